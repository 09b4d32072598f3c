/* tls_proto.c - Postfix protocol lists (smtpd_tls_protocols,
 * smtpd_tls_mandatory_protocols) to a mask of disabled versions.
 *
 * Used by tls_server.c (which turns the mask into SSL_OP_NO_* options and
 * a minimum/maximum version) and by configuration checks that want to
 * reject a bad list before a daemon starts. Pure parsing: no OpenSSL, no
 * state. On error nothing is written to *disabled_r.
 *
 * Postfix 3.7 semantics (tls_misc.c tls_protocol_mask()), checked against
 * Debian's Postfix 3.7.11:
 *   - elements are separated by commas, colons or white space;
 *   - "!NAME" disables NAME; a plain "NAME" enables it, and when at least
 *     one plain name is given every known version not named is disabled;
 *   - ">=NAME" disables every version below NAME, "<=NAME" every version
 *     above it (Postfix 3.6 and later); all forms may be mixed;
 *   - names compare without regard to case ("!sslv2" and ">=tlsv1.2" are
 *     accepted by Postfix 3.7.11);
 *   - an empty value disables nothing.
 * Postfix accepts a list that leaves nothing enabled and then fails every
 * handshake ("no protocols available"); postern refuses it up front.
 */
#include "tls/tls.h"

#include <stddef.h>
#include <string.h>
#include <strings.h>

static const struct {
	const char *name;
	unsigned bit;
} protocols[] = {
        {"SSLv2", TLS_PROTO_SSLv2},     {"SSLv3", TLS_PROTO_SSLv3},
        {"TLSv1", TLS_PROTO_TLSv1},     {"TLSv1.1", TLS_PROTO_TLSv1_1},
        {"TLSv1.2", TLS_PROTO_TLSv1_2}, {"TLSv1.3", TLS_PROTO_TLSv1_3},
};

#define N_PROTOCOLS (sizeof(protocols) / sizeof(protocols[0]))
#define ALL_PROTOCOLS ((1u << N_PROTOCOLS) - 1)

/* Index of the version named by the len bytes at name, or -1. */
static int protocol_index(const char *name, size_t len)
{
	for (size_t i = 0; i < N_PROTOCOLS; i++)
		if (strlen(protocols[i].name) == len &&
		    strncasecmp(protocols[i].name, name, len) == 0)
			return (int)i;
	return -1;
}

int tls_protocols_parse(const char *param, const char *value, unsigned *disabled_r, str_t *error)
{
	static const char seps[] = ", \t\r\n:";
	unsigned include = 0, exclude = 0, below = 0, above = 0;
	const char *p = value != NULL ? value : "";

	for (;;) {
		p += strspn(p, seps);
		if (*p == '\0')
			break;
		size_t len = strcspn(p, seps);
		const char *name = p;
		size_t name_len = len;
		char op = 0;

		if (len >= 1 && *p == '!') {
			op = '!';
			name++;
			name_len--;
		} else if (len >= 2 && (p[0] == '>' || p[0] == '<') && p[1] == '=') {
			op = p[0];
			name += 2;
			name_len -= 2;
		}
		int i = protocol_index(name, name_len);
		if (i < 0) {
			str_appendf(error,
			            "%s: unknown protocol %.*s (expected SSLv2, SSLv3, TLSv1, "
			            "TLSv1.1, TLSv1.2, TLSv1.3, optionally with ! or >= / <=)",
			            param, (int)len, p);
			return -1;
		}
		switch (op) {
		case '!':
			exclude |= protocols[i].bit;
			break;
		case '>': /* every version below this one */
			below |= protocols[i].bit - 1;
			break;
		case '<': /* every version above this one */
			above |= ALL_PROTOCOLS & ~((protocols[i].bit << 1) - 1);
			break;
		default:
			include |= protocols[i].bit;
			break;
		}
		p += len;
	}

	unsigned disabled = exclude | below | above;
	if (include != 0)
		disabled |= ALL_PROTOCOLS & ~include;
	/* Why SSL versions do not count as "left enabled": OpenSSL 3 has
	 * no SSLv2 at all and Debian's builds no SSLv3, so a list that
	 * leaves only those enables nothing that can complete a handshake. */
	const unsigned tls_versions =
	        TLS_PROTO_TLSv1 | TLS_PROTO_TLSv1_1 | TLS_PROTO_TLSv1_2 | TLS_PROTO_TLSv1_3;
	if ((disabled & tls_versions) == tls_versions) {
		str_appendf(error, "%s: \"%s\" leaves no protocol enabled", param, value);
		return -1;
	}
	*disabled_r = disabled;
	return 0;
}
