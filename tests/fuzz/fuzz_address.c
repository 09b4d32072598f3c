/* fuzz_address.c - libFuzzer target for the MAIL FROM / RCPT TO parser and
 * the address resolver (lib/address/address.c).
 *
 * The first input byte picks the role and parse flags and the resolver's
 * options; the rest is the command argument. For every argument the
 * parser accepts, the invariants smtpd and qmgr rely on are checked, and a
 * violation aborts (so libFuzzer reports it):
 *  - the address quotes for the wire and parses back to the same internal
 *    form; the internal form round-trips through address_from_internal();
 *  - resolution returns a domain, lower-case, never "local and not routed"
 *    for a domain that is_local_domain() did not call local;
 *  - parameters are printable words (keys upper-cased, no '=', no space or
 *    control character in key or value); xtext and ORCPT decoding of their
 *    values never crash.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/str.h"
#include "address/address.h"
#include "address/address_resolve.h"
#include "address/xtext.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const local_domains[] = {"local.example", "mail.local.example", "[192.0.2.25]"};

static enum address_local fuzz_is_local(const char *domain, void *ctx)
{
	(void)ctx;
	for (const char *c = domain; *c != '\0'; c++)
		if (*c >= 'A' && *c <= 'Z')
			log_panic("is_local_domain called with upper case: %s", domain);
	if (strcmp(domain, "tempfail.example") == 0)
		return ADDRESS_LOCAL_TEMPFAIL;
	for (size_t i = 0; i < sizeof(local_domains) / sizeof(local_domains[0]); i++)
		if (strcmp(domain, local_domains[i]) == 0)
			return ADDRESS_LOCAL_YES;
	return ADDRESS_LOCAL_NO;
}

static bool is_local_name(const char *domain)
{
	for (size_t i = 0; i < sizeof(local_domains) / sizeof(local_domains[0]); i++)
		if (strcmp(domain, local_domains[i]) == 0)
			return true;
	return false;
}

static void check_round_trip(const struct mail_address *addr)
{
	struct mail_path *again;
	struct mail_address *from_internal;
	struct address_error err;
	str_t ext, in1, in2;

	str_init(&ext);
	str_init(&in1);
	str_init(&in2);
	address_internal_string(addr, &in1);
	if (!addr->null) {
		str_append_c(&ext, '<');
		if (address_external(addr, &ext) < 0)
			log_panic("parsed address cannot be written: %s", str_c(&in1));
		str_append_c(&ext, '>');
		/* Quoting adds bytes, so a local part or path at its bound may
		 * come back too long; anything else must parse to the same. */
		if (address_parse_path(ext.buf, ext.len, ADDRESS_RECIPIENT,
		                       ADDRESS_PARSE_SMTPUTF8 | ADDRESS_PARSE_SLOPPY, &again,
		                       &err) == 0) {
			address_internal_string(&again->addr, &in2);
			if (strcmp(str_c(&in1), str_c(&in2)) != 0)
				log_panic("round trip changed %s into %s", str_c(&in1),
				          str_c(&in2));
			mail_path_destroy(&again);
		} else if (err.kind != ADDRESS_ERR_TOO_LONG) {
			log_panic("external form %s does not parse: %s", str_c(&ext), err.detail);
		}
	}
	/* A domainless local part with '@' in it ("x@Y.") is ambiguous in
	 * internal form, as in Postfix; everything else must survive. */
	if (addr->domain != NULL || strchr(addr->local, '@') == NULL) {
		from_internal = address_from_internal(str_c(&in1));
		str_reset(&in2);
		address_internal_string(from_internal, &in2);
		if (strcmp(str_c(&in1), str_c(&in2)) != 0)
			log_panic("internal form changed %s into %s", str_c(&in1), str_c(&in2));
		mail_address_destroy(&from_internal);
	}
	str_free(&ext);
	str_free(&in1);
	str_free(&in2);
}

static void check_resolve(const struct mail_address *addr, uint8_t sel)
{
	struct address_resolve_options opt;
	struct address_resolved res;
	str_t rules;

	address_resolve_options_init(&opt);
	opt.swap_bangpath = (sel & 0x08) == 0;
	opt.allow_percent_hack = (sel & 0x10) == 0;
	opt.resolve_dequoted_address = (sel & 0x20) == 0;
	opt.resolve_null_domain = (sel & 0x40) != 0;
	opt.resolve_numeric_domain = (sel & 0x80) != 0;
	opt.myorigin = "local.example";
	opt.myhostname = "mail.local.example";
	opt.mydomain = (sel & 0x40) != 0 ? "local.example" : NULL;
	opt.is_local_domain = fuzz_is_local;
	if (address_resolve(addr, &opt, &res) < 0)
		return; /* tempfail.example */
	if (res.local == NULL || res.domain == NULL)
		log_panic("resolver returned no local part or domain");
	for (const char *c = res.domain; *c != '\0'; c++)
		if (*c >= 'A' && *c <= 'Z')
			log_panic("resolved domain not lower-case: %s", res.domain);
	if (res.local_domain && (res.bad || !is_local_name(res.domain)))
		log_panic("resolved to a local class for %s", res.domain);
	if (res.routed != (strpbrk(res.local, "@!%") != NULL))
		log_panic("routed flag wrong for %s", res.local);
	str_init(&rules);
	address_resolve_rules(res.rules, &rules);
	str_free(&rules);
	address_resolved_free(&res);
}

static void check_params(const struct mail_path *path)
{
	str_t a, b;
	const char *error;

	str_init(&a);
	str_init(&b);
	for (size_t i = 0; i < path->nparams; i++) {
		const struct esmtp_param *p = &path->params[i];

		/* Any printable word is a parameter (smtpd answers 555 for one
		 * it does not know); never a control character or a space. */
		for (const char *c = p->key; *c != '\0'; c++)
			if ((unsigned char)*c <= ' ' || *c == 127 || *c == '=' ||
			    (*c >= 'a' && *c <= 'z'))
				log_panic("bad keyword accepted: %s", p->key);
		for (const char *c = p->value != NULL ? p->value : ""; *c != '\0'; c++)
			if ((unsigned char)*c <= ' ' || *c == 127)
				log_panic("bad parameter value accepted: %s", p->value);
		if (p->value == NULL)
			continue;
		str_reset(&a);
		(void)xtext_decode(p->value, strlen(p->value), &a, &error);
		(void)address_orcpt_parse(p->value, true, &a, &b, &error);
		(void)address_orcpt_parse(p->value, false, &a, &b, &error);
	}
	str_free(&a);
	str_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mail_path *path;
	struct address_error err;
	unsigned flags = 0;
	enum address_role role;
	uint8_t sel;
	str_t enc, dec;
	const char *error;

	if (size == 0)
		return 0;
	sel = data[0];
	role = (sel & 0x01) != 0 ? ADDRESS_SENDER : ADDRESS_RECIPIENT;
	if ((sel & 0x02) != 0)
		flags |= ADDRESS_PARSE_SMTPUTF8;
	if ((sel & 0x04) != 0)
		flags |= ADDRESS_PARSE_SLOPPY;
	data++;
	size--;

	if (address_parse_path((const char *)data, size, role, flags, &path, &err) == 0) {
		if (path == NULL)
			log_panic("success without a path");
		check_round_trip(&path->addr);
		check_resolve(&path->addr, sel);
		check_params(path);
		mail_path_destroy(&path);
	} else if (path != NULL || err.code == 0 || err.enhanced == NULL || err.text == NULL ||
	           err.detail == NULL || err.offset > size) {
		log_panic("failure without a complete error");
	}

	/* xtext: encoding any bytes decodes back to them (NUL excepted). */
	str_init(&enc);
	str_init(&dec);
	xtext_encode((const char *)data, size, &enc);
	if (memchr(data, 0, size) == NULL) {
		if (xtext_decode(enc.buf, enc.len, &dec, &error) < 0 || dec.len != size ||
		    (size > 0 && memcmp(dec.buf, data, size) != 0))
			log_panic("xtext round trip failed");
	}
	str_free(&enc);
	str_free(&dec);

	/* The resolver also sees internal forms that never passed the parser
	 * (queue files, alias expansions). */
	if (size < 2048 && memchr(data, 0, size) == NULL) {
		char *text = malloc(size + 1);
		struct mail_address *addr;

		if (text == NULL)
			return 0;
		memcpy(text, data, size);
		text[size] = '\0';
		addr = address_from_internal(text);
		check_resolve(addr, sel);
		mail_address_destroy(&addr);
		free(text);
	}
	return 0;
}
