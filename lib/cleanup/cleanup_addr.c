/* cleanup_addr.c - addresses in message headers.
 *
 * For local submissions (CLEANUP_F_LOCAL) cleanup rewrites the addresses
 * in From, Sender, To, Cc, Bcc, Reply-To and Resent-* the way Postfix's
 * trivial-rewrite does for header addresses: "user" becomes
 * user@$myorigin (append_at_myorigin) and "user@host" becomes
 * user@host.$mydomain (append_dot_mydomain, off by default). For
 * sendmail -t it extracts the recipients from To, Cc and Bcc.
 *
 * Only simple address lists are handled (header_address_next): a value
 * that does not parse is left exactly as it was and gives no recipients,
 * never a guess. Addresses longer than QUEUE_FIELD_MAX are skipped.
 */
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/mem.h"
#include "cleanup/cleanup_private.h"
#include "message/header.h"

void cleanup_rewrite_addr(const struct cleanup_settings *set, const char *addr, size_t len,
                          str_t *out)
{
	const char *at = NULL;
	bool quoted = false;
	for (size_t i = 0; i < len; i++) {
		if (addr[i] == '\\' && i + 1 < len)
			i++;
		else if (addr[i] == '"')
			quoted = !quoted;
		else if (addr[i] == '@' && !quoted)
			at = addr + i;
	}
	str_append_n(out, addr, len);
	if (at == NULL) {
		if (set->append_at_myorigin && *set->myorigin != '\0')
			str_appendf(out, "@%s", set->myorigin);
		return;
	}
	const char *domain = at + 1;
	size_t dlen = len - (size_t)(domain - addr);
	if (set->append_dot_mydomain && *set->mydomain != '\0' && dlen > 0 && domain[0] != '[' &&
	    memchr(domain, '.', dlen) == NULL)
		str_appendf(out, ".%s", set->mydomain);
}

void cleanup_rewrite_header(struct cleanup *c, str_t *hdr)
{
	size_t off = header_value_offset(hdr->buf, hdr->len);
	const char *value = hdr->buf + off;
	size_t vlen = hdr->len - off;
	size_t pos = 0, copied = 0;
	struct header_address a;
	str_t *out = &c->tmp2;
	int rc;

	str_reset(out);
	str_append_n(out, hdr->buf, off);
	while ((rc = header_address_next(value, vlen, &pos, &a)) == 1) {
		str_append_n(out, value + copied, a.start - copied);
		cleanup_rewrite_addr(c->set, value + a.start, a.len, out);
		copied = a.start + a.len;
	}
	if (rc < 0)
		return; /* leave it alone */
	str_append_n(out, value + copied, vlen - copied);
	/* Bounded like the header itself. */
	if (out->len <= c->set->header_size_limit + 1024)
		str_set(hdr, str_c(out));
}

/* The internal form of an addr-spec: quotes and backslash escapes of the
 * local part removed. */
static void internal_form(const char *addr, size_t len, str_t *out)
{
	for (size_t i = 0; i < len; i++) {
		if (addr[i] == '\\' && i + 1 < len)
			str_append_c(out, addr[++i]);
		else if (addr[i] != '"' && (unsigned char)addr[i] >= 32)
			str_append_c(out, addr[i]);
	}
}

void cleanup_extract_header(struct cleanup *c, const str_t *hdr, strv_t *out)
{
	size_t off = header_value_offset(hdr->buf, hdr->len);
	const char *value = hdr->buf + off;
	size_t vlen = hdr->len - off;
	size_t pos = 0;
	struct header_address a;
	str_t rewritten, internal;
	str_init(&rewritten);
	str_init(&internal);
	while (header_address_next(value, vlen, &pos, &a) == 1) {
		str_reset(&rewritten);
		str_reset(&internal);
		cleanup_rewrite_addr(c->set, value + a.start, a.len, &rewritten);
		internal_form(rewritten.buf, rewritten.len, &internal);
		if (internal.len == 0 || internal.len > QUEUE_FIELD_MAX) {
			log_warning("%s: skipping unusable recipient address in header", c->id);
			continue;
		}
		/* Duplicates are removed once, when recipients are written. */
		if (out->n >= CLEANUP_EXTRACT_MAX) {
			log_warning("%s: more than %d recipients in headers: skipping the rest",
			            c->id, CLEANUP_EXTRACT_MAX);
			break;
		}
		strv_add(out, str_c(&internal));
	}
	str_free(&rewritten);
	str_free(&internal);
}
