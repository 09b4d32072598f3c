/* ldap_cf.c - read an ldap: table's .cf file (see ldap_cf.h). Used by
 * table_ldap.c and sasl_ldap.c through ldap_cf_open.
 *
 * On failure every problem of the file is reported at once, each naming
 * the file and line; the object is left for ldap_cf_free.
 */
#include "table/ldap_cf.h"

#include <ldap.h>
#include <stdlib.h>
#include <string.h>

#include "base/fs.h"
#include "base/log.h"
#include "base/mem.h"
#include "conf/config.h"
#include "table/table.h"
#include "table/table_cf.h"
#include "table/table_file.h"

static const char *const ldap_params[] = {
        "server_host",
        "server_port",
        "timeout",
        "search_base",
        "query_filter",
        "result_format",
        "result_filter",
        "domain",
        "result_attribute",
        "special_result_attribute",
        "terminal_result_attribute",
        "leaf_result_attribute",
        "scope",
        "bind",
        "bind_dn",
        "bind_pw",
        "recursion_limit",
        "expansion_limit",
        "size_limit",
        "dereference",
        "chase_referrals",
        "version",
        "debuglevel",
        "start_tls",
        "tls_ca_cert_dir",
        "tls_ca_cert_file",
        "tls_cert",
        "tls_key",
        "tls_require_cert",
        "tls_random_file",
        "tls_cipher_suite",
        "sasl_mechs",
        "sasl_realm",
        "sasl_authz_id",
        "sasl_minssf",
        "cache",
        "cache_expiry",
        "cache_size",
        NULL,
};
static const char *const postern_params[] = {
        "bind_pw_file",
        "recursion_filter",
        "special_result_in_chain",
        NULL,
};

static const char hexdigits[] = "0123456789abcdef";

static void append_hex(str_t *out, unsigned char c)
{
	str_append_c(out, '\\');
	str_append_c(out, hexdigits[c >> 4]);
	str_append_c(out, hexdigits[c & 15]);
}

void ldap_escape_filter(str_t *out, const char *value)
{
	for (const unsigned char *p = (const unsigned char *)value; *p != '\0'; p++) {
		if (*p == '*' || *p == '(' || *p == ')' || *p == '\\' || *p < 0x20 || *p >= 0x7f)
			append_hex(out, *p);
		else
			str_append_c(out, (char)*p);
	}
}

void ldap_escape_dn(str_t *out, const char *value)
{
	size_t len = strlen(value);

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)value[i];

		if (c < 0x20 || c >= 0x7f || (i == 0 && c == '#') ||
		    ((i == 0 || i == len - 1) && c == ' ')) {
			append_hex(out, c);
			continue;
		}
		if (strchr(",+\"\\<>;=", c) != NULL)
			str_append_c(out, '\\');
		str_append_c(out, (char)c);
	}
}

/* One element of server_host as a URL. */
static int add_server(struct table_cf *r, const char *elem, unsigned port, str_t *uris)
{
	char *url;

	if (strstr(elem, "://") != NULL) {
		if (!ldap_is_ldap_url(elem) && !ldap_is_ldaps_url(elem) &&
		    !ldap_is_ldapi_url(elem)) {
			char *why = xasprintf("server_host: \"%s\": expected ldap://, ldaps:// or "
			                      "ldapi:// URL, or host[:port]",
			                      elem);

			table_cf_bad_param(r, "server_host", why);
			free(why);
			return -1;
		}
		url = xstrdup(elem);
	} else if (strchr(elem, '/') != NULL || elem[0] == '\0') {
		char *why =
		        xasprintf("server_host: \"%s\": expected host[:port] or an LDAP URL", elem);

		table_cf_bad_param(r, "server_host", why);
		free(why);
		return -1;
	} else if (strchr(elem, ':') != NULL && strchr(elem, ']') == NULL &&
	           strchr(elem, ':') == strrchr(elem, ':')) {
		url = xasprintf("ldap://%s", elem); /* host:port */
	} else {
		url = xasprintf("ldap://%s:%u", elem, port);
	}
	{
		LDAPURLDesc *desc = NULL;

		if (ldap_url_parse(url, &desc) != LDAP_URL_SUCCESS) {
			char *why = xasprintf("server_host: \"%s\": not a valid LDAP URL", url);

			table_cf_bad_param(r, "server_host", why);
			free(why);
			free(url);
			return -1;
		}
		ldap_free_urldesc(desc);
	}
	if (uris->len > 0)
		str_append_c(uris, ' ');
	str_append(uris, url);
	free(url);
	return 0;
}

static void read_servers(struct ldap_cf *cf, struct table_cf *r)
{
	const char *hosts = table_cf_get(r, "server_host");
	unsigned port = table_cf_uint(r, "server_port", 389, 65535);
	strv_t elems = STRV_INIT;
	const char *why = NULL;
	str_t uris;

	str_init(&uris);
	if (hosts == NULL || hosts[0] == '\0')
		hosts = "localhost";
	if (strv_split_list(&elems, hosts, &why) < 0)
		table_cf_bad_param(r, "server_host", why);
	for (size_t i = 0; i < elems.n; i++)
		if (add_server(r, elems.v[i], port, &uris) < 0)
			break;
	cf->uris = str_steal(&uris);
	str_free(&uris);
	cf->servers = xstrdup(cf->uris);
	strv_free(&elems);
}

/* A list of attribute names (comma or space separated). */
static void read_attrs(struct table_cf *r, const char *name, const char *def, strv_t *out)
{
	const char *v = table_cf_get(r, name);
	const char *why = NULL;

	if (v == NULL)
		v = def;
	if (strv_split_list(out, v, &why) < 0) {
		table_cf_bad_param(r, name, why);
		return;
	}
	for (size_t i = 0; i < out->n; i++)
		for (const char *p = out->v[i]; *p != '\0'; p++)
			if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			      (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == ';')) {
				char *msg = xasprintf("%s: \"%s\" is not an attribute name", name,
				                      out->v[i]);

				table_cf_bad_param(r, name, msg);
				free(msg);
				return;
			}
}

static void add_attrs(strv_t *all, const strv_t *list)
{
	for (size_t i = 0; i < list->n; i++) {
		bool seen = false;

		for (size_t j = 0; j < all->n && !seen; j++)
			seen = strcasecmp(all->v[j], list->v[i]) == 0;
		if (!seen)
			strv_add(all, list->v[i]);
	}
}

/* Compile one key template (search_base, query_filter). */
static void read_template(struct ldap_cf *cf, struct table_cf *r, const char *name,
                          const char *text, struct sqlcf_template *t)
{
	str_t why;

	str_init(&why);
	if (sqlcf_compile_key_template(text, name, t, &cf->need, &cf->labels, &why) < 0)
		table_cf_bad_param(r, name, str_c(&why));
	str_free(&why);
}

/* The first line of bind_pw_file. */
static void read_password_file(struct ldap_cf *cf, struct table_cf *r, const char *file)
{
	str_t text, why;
	char *path = table_file_path(file, NULL);

	str_init(&text);
	str_init(&why);
	if (fs_read_file(path, LDAP_CF_PASSWORD_MAX, &text, &why) < 0) {
		table_cf_bad_param(r, "bind_pw_file", str_c(&why));
	} else {
		size_t n = strcspn(str_c(&text), "\r\n");

		cf->bind_pw = xstrndup(str_c(&text), n);
	}
	if (text.buf != NULL)
		memset(text.buf, 0, text.len);
	str_free(&text);
	str_free(&why);
	free(path);
}

static void read_connection(struct ldap_cf *cf, struct table_cf *r)
{
	const char *v;

	read_servers(cf, r);
	cf->timeout = table_cf_uint(r, "timeout", 10, 3600);
	if (cf->timeout == 0)
		table_cf_bad_value(r, "timeout", "a number of seconds from 1 to 3600");
	cf->version = (int)table_cf_uint(r, "version", 3, 3);
	if (cf->version < 2)
		table_cf_bad_value(r, "version", "2 or 3");
	cf->start_tls = table_cf_bool(r, "start_tls", false);
	cf->tls_ca_cert_file = table_cf_dup(r, "tls_ca_cert_file");
	cf->tls_ca_cert_dir = table_cf_dup(r, "tls_ca_cert_dir");
	cf->tls_cert = table_cf_dup(r, "tls_cert");
	cf->tls_key = table_cf_dup(r, "tls_key");
	cf->tls_cipher_suite = table_cf_dup(r, "tls_cipher_suite");
	cf->tls_require_cert = table_cf_bool(r, "tls_require_cert", false);
	if (cf->start_tls && cf->version < 3)
		table_cf_problem(r, "start_tls = yes needs version = 3");
	v = table_cf_get(r, "bind");
	if (v == NULL || strcasecmp(v, "yes") == 0 || strcasecmp(v, "simple") == 0 ||
	    strcasecmp(v, "true") == 0 || strcmp(v, "1") == 0)
		cf->bind = true;
	else if (strcasecmp(v, "no") == 0 || strcasecmp(v, "none") == 0 ||
	         strcasecmp(v, "false") == 0 || strcmp(v, "0") == 0)
		cf->bind = false;
	else if (strcasecmp(v, "sasl") == 0)
		table_cf_bad_value(r, "bind",
		                   "yes (simple) or no: SASL binds are not implemented in postern "
		                   "yet");
	else
		table_cf_bad_value(r, "bind", "yes (simple) or no");
	cf->bind_dn = table_cf_dup(r, "bind_dn");
	cf->bind_pw = table_cf_dup(r, "bind_pw");
	v = table_cf_get(r, "bind_pw_file");
	if (v != NULL && v[0] != '\0') {
		if (cf->bind_pw != NULL)
			table_cf_problem(r, "set bind_pw or bind_pw_file, not both");
		else
			read_password_file(cf, r, v);
	}
	cf->dereference = (int)table_cf_uint(r, "dereference", 0, 3);
	cf->chase_referrals = table_cf_bool(r, "chase_referrals", false);
	/* debuglevel sets libldap's process-wide debug output: noted, not
	 * applied (it would print to standard error of a daemon). */
	if (table_cf_uint(r, "debuglevel", 0, 65535) != 0)
		log_warning("%s: debuglevel is not implemented: libldap's debug output is not "
		            "enabled (use the directory server's log instead)",
		            config_where(r->cfg, "debuglevel"));
	for (const char *const *p = (const char *const[]){"sasl_mechs", "sasl_realm",
	                                                  "sasl_authz_id", "sasl_minssf", NULL};
	     *p != NULL; p++)
		if (table_cf_get(r, *p) != NULL)
			log_warning("%s: %s is not implemented (bind = sasl is not supported)",
			            config_where(r->cfg, *p), *p);
	for (const char *const *p =
	             (const char *const[]){"cache", "cache_expiry", "cache_size", NULL};
	     *p != NULL; p++)
		if (table_cf_get(r, *p) != NULL)
			log_warning("%s: %s is obsolete and ignored (postern caches remote tables "
			            "itself: table_cache_* in main.cf)",
			            config_where(r->cfg, *p), *p);
	if (table_cf_get(r, "tls_random_file") != NULL)
		log_warning("%s: tls_random_file is ignored (OpenSSL seeds itself)",
		            config_where(r->cfg, "tls_random_file"));
}

static void read_search(struct ldap_cf *cf, struct table_cf *r,
                        const struct table_open_context *ctx)
{
	const char *v;
	str_t why;

	str_init(&why);
	v = table_cf_get(r, "search_base");
	if (v == NULL)
		table_cf_problem(r, "no search_base: set search_base = dc=example, dc=com");
	else
		read_template(cf, r, "search_base", v, &cf->search_base);
	v = table_cf_get(r, "query_filter");
	read_template(cf, r, "query_filter", v != NULL ? v : "mailacceptinggeneralid=%s",
	              &cf->query_filter);
	v = table_cf_get(r, "result_format");
	if (v == NULL)
		v = table_cf_get(r, "result_filter");
	if (sqlcf_compile_result(v != NULL ? v : "%s", &cf->result_format, &cf->need, &cf->labels,
	                         &why) < 0)
		table_cf_bad_param(r,
		                   table_cf_get(r, "result_format") != NULL ? "result_format"
		                                                            : "result_filter",
		                   str_c(&why));
	v = table_cf_get(r, "scope");
	if (v == NULL || strcasecmp(v, "sub") == 0)
		cf->scope = LDAP_SCOPE_SUBTREE;
	else if (strcasecmp(v, "one") == 0)
		cf->scope = LDAP_SCOPE_ONELEVEL;
	else if (strcasecmp(v, "base") == 0)
		cf->scope = LDAP_SCOPE_BASE;
	else
		table_cf_bad_value(r, "scope", "sub, one or base");
	if (r->errors == 0 && table_cf_get(r, "domain") != NULL) {
		str_reset(&why);
		if (sqlcf_domains_parse(&cf->domains, table_cf_get(r, "domain"), ctx, &why) < 0)
			table_cf_bad_param(r, "domain", str_c(&why));
	}
	str_free(&why);
}

static void read_results(struct ldap_cf *cf, struct table_cf *r)
{
	strv_t all = STRV_INIT;

	read_attrs(r, "result_attribute", "maildrop", &cf->result_attrs);
	read_attrs(r, "special_result_attribute", "", &cf->special_attrs);
	read_attrs(r, "terminal_result_attribute", "", &cf->terminal_attrs);
	read_attrs(r, "leaf_result_attribute", "", &cf->leaf_attrs);
	add_attrs(&all, &cf->result_attrs);
	add_attrs(&all, &cf->special_attrs);
	add_attrs(&all, &cf->terminal_attrs);
	add_attrs(&all, &cf->leaf_attrs);
	if (all.n == 0)
		table_cf_problem(r, "no result attributes: set result_attribute (or "
		                    "terminal_result_attribute or leaf_result_attribute)");
	cf->attrs = xcalloc(all.n + 1, sizeof(*cf->attrs));
	for (size_t i = 0; i < all.n; i++)
		cf->attrs[i] = xstrdup(all.v[i]);
	strv_free(&all);
	cf->recursion_limit = table_cf_uint(r, "recursion_limit", 1000, 100000);
	if (cf->recursion_limit == 0)
		table_cf_bad_value(r, "recursion_limit", "a number from 1 to 100000");
	cf->expansion_limit = table_cf_uint(r, "expansion_limit", 0, 1000000);
	cf->size_limit = table_cf_uint(r, "size_limit", cf->expansion_limit, 1000000);
	cf->recursion_filter = table_cf_dup(r, "recursion_filter");
	cf->in_chain = table_cf_bool(r, "special_result_in_chain", false);
	if (cf->in_chain && cf->special_attrs.n == 0)
		table_cf_problem(r, "special_result_in_chain = yes needs special_result_attribute "
		                    "(the group's member attribute)");
}

int ldap_cf_open(struct ldap_cf *cf, const char *name, const struct table_open_context *ctx,
                 str_t *error)
{
	const char *const *const known[] = {ldap_params, postern_params, NULL};
	struct table_cf r;
	int ret;

	memset(cf, 0, sizeof(*cf));
	if (table_cf_open(&r, "ldap", name, known, ctx, error) < 0)
		return -1;
	cf->path = xstrdup(r.path);
	read_connection(cf, &r);
	read_search(cf, &r, ctx);
	read_results(cf, &r);
	ret = r.errors == 0 ? 0 : -1;
	table_cf_close(&r);
	return ret;
}

void ldap_cf_free(struct ldap_cf *cf)
{
	free(cf->path);
	free(cf->uris);
	free(cf->servers);
	free(cf->tls_ca_cert_file);
	free(cf->tls_ca_cert_dir);
	free(cf->tls_cert);
	free(cf->tls_key);
	free(cf->tls_cipher_suite);
	free(cf->bind_dn);
	if (cf->bind_pw != NULL)
		memset(cf->bind_pw, 0, strlen(cf->bind_pw));
	free(cf->bind_pw);
	sqlcf_template_free(&cf->search_base);
	sqlcf_template_free(&cf->query_filter);
	sqlcf_template_free(&cf->result_format);
	sqlcf_domains_free(&cf->domains);
	strv_free(&cf->result_attrs);
	strv_free(&cf->special_attrs);
	strv_free(&cf->terminal_attrs);
	strv_free(&cf->leaf_attrs);
	if (cf->attrs != NULL)
		for (char **p = cf->attrs; *p != NULL; p++)
			free(*p);
	free(cf->attrs);
	free(cf->recursion_filter);
	memset(cf, 0, sizeof(*cf));
}
