/* domain_list.h - Postfix domain lists: mydestination, relay_domains,
 * virtual_alias_domains, virtual_mailbox_domains.
 *
 * A list mixes plain domains ("example.com", ".example.com" for its
 * subdomains), type:table entries and "!" negations; the first element
 * that matches decides. This module parses a parameter into elements;
 * the callers match them their own way (the restriction engine with
 * asynchronous lookups, lib/delivery/resolve with synchronous ones).
 */
#ifndef POSTERN_DOMAIN_LIST_H
#define POSTERN_DOMAIN_LIST_H

#include <stdbool.h>
#include <stddef.h>

#include "base/str.h"

struct config;

struct domain_list_elem {
	bool neg; /* "!element" */
	char *table; /* "type:name", or NULL */
	char *domain; /* lower-case, no trailing dot, maybe a leading dot; NULL for a table */
};

struct domain_list {
	const char *param; /* the parameter it came from (static) */
	bool parent_style; /* param is in parent_domain_matches_subdomains */
	struct domain_list_elem *v;
	size_t n;
};

/* Parse the value of param (a static string) from cfg into dl (zeroed by
 * the caller). -1 with a message naming the parameter and the element
 * on error (pattern files "/path" and empty elements are refused); dl
 * then holds what was parsed so far and must still be freed. */
int domain_list_parse(struct config *cfg, const char *param, struct domain_list *dl, str_t *error);
void domain_list_free(struct domain_list *dl);

#endif
