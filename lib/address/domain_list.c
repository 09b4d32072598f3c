/* domain_list.c - parse Postfix domain lists (see domain_list.h).
 *
 * Used by the restriction engine (lib/smtp/restrict_addr.c) and by
 * recipient resolution (lib/delivery/resolve.c), so that smtpd and
 * `postern trace` read mydestination and friends the same way. Errors
 * name the parameter and the element; nothing is opened here.
 */
#include "address/domain_list.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "base/strv.h"
#include "conf/config.h"

/* "type:name" with a type of letters, digits, '_' or '-'. */
static bool is_table(const char *item)
{
	const char *colon = strchr(item, ':');

	if (colon == NULL || colon == item)
		return false;
	for (const char *p = item; p < colon; p++)
		if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-')
			return false;
	return true;
}

int domain_list_parse(struct config *cfg, const char *param, struct domain_list *dl, str_t *error)
{
	const strv_t *items, *parent;
	const char *why;

	dl->param = param;
	if (config_get_list(cfg, "parent_domain_matches_subdomains", &parent, &why) < 0 ||
	    config_get_list(cfg, param, &items, &why) < 0) {
		str_append(error, why);
		return -1;
	}
	dl->parent_style = strv_find(parent, param) >= 0;
	for (size_t i = 0; i < items->n; i++) {
		const char *item = items->v[i];
		struct domain_list_elem d = {.neg = false};

		if (*item == '!') {
			d.neg = true;
			item++;
		}
		if (*item == '/') {
			str_appendf(error,
			            "%s: \"%s\": pattern files are not supported; use a table",
			            param, item);
			return -1;
		}
		if (*item == '\0') {
			str_appendf(error, "%s: empty element", param);
			return -1;
		}
		if (is_table(item)) {
			d.table = xstrdup(item);
		} else {
			size_t len;

			d.domain = xstrdup(item);
			for (char *p = d.domain; *p != '\0'; p++)
				*p = (char)tolower((unsigned char)*p);
			len = strlen(d.domain);
			if (len > 1 && d.domain[len - 1] == '.')
				d.domain[len - 1] = '\0';
		}
		dl->v = xreallocarray(dl->v, dl->n + 1, sizeof(*dl->v));
		dl->v[dl->n++] = d;
	}
	return 0;
}

void domain_list_free(struct domain_list *dl)
{
	for (size_t i = 0; i < dl->n; i++) {
		free(dl->v[i].table);
		free(dl->v[i].domain);
	}
	free(dl->v);
	dl->v = NULL;
	dl->n = 0;
}
