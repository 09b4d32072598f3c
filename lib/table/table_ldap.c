/* table_ldap.c - the ldap: lookup table: a Postfix ldap_table(5) .cf file.
 *
 * "ldap:/etc/postern/ldap-users.cf" names a file in the format of
 * Postfix's ldap_table(5) (lib/table/ldap_cf.h lists what postern reads);
 * each lookup searches the directory through OpenLDAP's client library
 * with the key escaped into the filter (lib/table/ldap_lookup.h). Each
 * table object owns one connection, opened at the first lookup and kept;
 * like the SQL tables it is remote (TABLE_F_REMOTE): event-driven daemons
 * run its lookups on table_async's workers, behind table_cache's positive,
 * negative and last-known-good answers.
 *
 * On failure: open fails with every problem of the .cf file, naming file
 * and line; a lookup whose directory is unreachable, slow or refusing is a
 * temporary failure naming the table and the servers, never "not found",
 * and the next lookup connects again.
 */
#include "table/ldap_cf.h"
#include "table/ldap_client.h"
#include "table/ldap_lookup.h"
#include "table/table_backends.h"

struct table_ldap {
	struct table t;
	struct ldap_cf cf;
	struct ldap_client client;
};

static int ldap_table_open(struct table *t, const char *name, const struct table_open_context *ctx,
                           str_t *error)
{
	struct table_ldap *tl = (struct table_ldap *)t;
	str_t why;

	str_init(&why);
	if (ldap_cf_open(&tl->cf, name, ctx, &why) < 0) {
		str_appendf(error, "%s: %s", t->spec, str_c(&why));
		str_free(&why);
		return -1;
	}
	str_free(&why);
	ldap_client_init(&tl->client, &tl->cf);
	return 0;
}

static void ldap_table_lookup(struct table *t, const char *key, struct table_result *r)
{
	struct table_ldap *tl = (struct table_ldap *)t;

	ldap_lookup(&tl->client, t->spec, key, r);
}

static void ldap_table_close(struct table *t)
{
	struct table_ldap *tl = (struct table_ldap *)t;

	ldap_client_close(&tl->client);
	ldap_cf_free(&tl->cf);
}

const struct table_backend table_backend_ldap = {
        .type = "ldap",
        .flags = TABLE_F_FIXED_KEYS | TABLE_F_REMOTE,
        .size = sizeof(struct table_ldap),
        .open = ldap_table_open,
        .lookup = ldap_table_lookup,
        .close = ldap_table_close,
};
