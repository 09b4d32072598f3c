/* table_db.c - db:NAME, the built-in lookups of postern's own schema.
 *
 * A default install needs no table files: main.cf says
 *
 *   virtual_mailbox_domains = db:domains
 *   virtual_alias_domains   = db:alias_domains
 *   virtual_alias_maps      = db:aliases
 *   virtual_mailbox_maps    = db:mailboxes
 *   relay_domains           = db:relay_domains
 *   virtual_uid_maps        = db:uid, static:5000
 *   transport_maps          = db:transport
 *   smtpd_sender_login_maps = db:sender_login
 *
 * and these tables answer from the `database_readonly` of main.cf
 * (lib/db, DB_ACCESS_READ: they only ever SELECT, so the processes that
 * look up, smtpd first, need no account that may write) with
 * fixed, parameterised queries (sql/README.md describes the schema).
 * Only active rows count: an inactive domain, mailbox, alias or alias
 * domain is "not found", and so is everything in an inactive domain.
 * What each table answers is written next to its lookup function below.
 *
 * Tables opened with the same struct config share one connection: a
 * config is used by one thread at a time (it caches expanded values), so
 * its tables are too (table_async.c gives every worker its own copy).
 *
 * On failure: opening fails only for an unknown NAME or a broken
 * `database_readonly` setting; every database problem at lookup time (server down,
 * missing SQLite file, no schema) is TABLE_TEMPFAIL with a message naming
 * the table and the server, never "not found".
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "base/strv.h"
#include "db/db.h"
#include "conf/config.h"
#include "sql/sql.h"
#include "table/table.h"
#include "table/table_backends.h"

/* Most rows one lookup may return (alias targets); more is an error
 * rather than an unbounded answer. */
#define DB_LOOKUP_ROWS_MAX 10000

/* A mailbox mail can be delivered to: itself and its domain active, and
 * the domain not a backup MX (those are relayed, db:relay_domains). */
#define MAILBOX_LIVE "m.active = '1' AND d.active = '1' AND d.backup_mx = '0'"

/* The queries, written once: the same text works on SQLite, MariaDB and
 * PostgreSQL ('1' quoted compares with INTEGER, TINYINT and BOOLEAN
 * columns alike). Results are sorted in C, not by ORDER BY, so that the
 * order does not depend on a server's collation. */
static const char q_domain[] =
        "SELECT name FROM domains WHERE name = ? AND active = '1' AND backup_mx = '0'";
static const char q_relay_domain[] =
        "SELECT name FROM domains WHERE name = ? AND active = '1' AND backup_mx = '1'";
/* An active alias domain whose target domain is active -> the target. */
static const char q_alias_domain[] =
        "SELECT d.name FROM alias_domains ad JOIN domains d ON d.id = ad.target_domain_id "
        "WHERE ad.name = ? AND ad.active = '1' AND d.active = '1'";
static const char q_mailbox[] = "SELECT m.maildir FROM mailboxes m JOIN domains d ON d.id = "
                                "m.domain_id WHERE m.address = ? AND " MAILBOX_LIVE;
static const char q_alias_targets[] =
        "SELECT t.target FROM aliases a JOIN domains d ON d.id = a.domain_id "
        "JOIN alias_targets t ON t.alias_id = a.id "
        "WHERE a.address = ? AND a.active = '1' AND d.active = '1'";
static const char q_quota[] =
        "SELECT COALESCE(m.quota_bytes, d.default_quota_bytes) FROM mailboxes m "
        "JOIN domains d ON d.id = m.domain_id WHERE m.address = ? AND " MAILBOX_LIVE;
static const char q_uid[] =
        "SELECT uid FROM domains WHERE name = ? AND active = '1' AND uid IS NOT NULL";
static const char q_gid[] =
        "SELECT gid FROM domains WHERE name = ? AND active = '1' AND gid IS NOT NULL";
static const char q_transport[] = "SELECT transport FROM domains WHERE name = ? AND active = '1' "
                                  "AND transport IS NOT NULL AND transport <> ''";
/* The mailbox itself, and the live mailboxes among an alias's targets
 * (both parameters are the address). */
static const char q_sender_login[] =
        "SELECT m.address FROM mailboxes m JOIN domains d ON d.id = m.domain_id "
        "WHERE m.address = ? AND " MAILBOX_LIVE " "
        "UNION "
        "SELECT m.address FROM aliases a JOIN domains ad ON ad.id = a.domain_id "
        "JOIN alias_targets t ON t.alias_id = a.id "
        "JOIN mailboxes m ON m.address = t.target JOIN domains d ON d.id = m.domain_id "
        "WHERE a.address = ? AND a.active = '1' AND ad.active = '1' AND " MAILBOX_LIVE;

/* ---- shared connections ------------------------------------------------ */

/* One connection per (config, database): see the header comment. */
struct db_shared {
	struct db_shared *next;
	const struct config *cfg;
	char *dsn, *pwfile; /* the settings it was opened with */
	struct sql_settings set;
	struct sql_conn *conn;
	bool file_seen; /* sqlite: the file existed at the last check */
	unsigned refs;
};

static pthread_mutex_t shared_lock = PTHREAD_MUTEX_INITIALIZER;
static struct db_shared *shared_list;

static struct db_shared *shared_get(struct config *cfg, str_t *error)
{
	const struct db_params *p = db_access_params(DB_ACCESS_READ);
	const char *dsn, *pwfile, *why;
	struct db_shared *sh;

	if (config_expand(cfg, p->dsn, &dsn, &why) < 0 ||
	    config_expand(cfg, p->password_file, &pwfile, &why) < 0) {
		str_append(error, why);
		return NULL;
	}
	pthread_mutex_lock(&shared_lock);
	for (sh = shared_list; sh != NULL; sh = sh->next) {
		if (sh->cfg == cfg && strcmp(sh->dsn, dsn) == 0 &&
		    strcmp(sh->pwfile, pwfile) == 0) {
			sh->refs++;
			pthread_mutex_unlock(&shared_lock);
			return sh;
		}
	}
	pthread_mutex_unlock(&shared_lock);

	sh = xcalloc(1, sizeof(*sh));
	if (db_settings(cfg, DB_ACCESS_READ, &sh->set, error) < 0) {
		free(sh);
		return NULL;
	}
	sh->cfg = cfg;
	sh->dsn = xstrdup(dsn);
	sh->pwfile = xstrdup(pwfile);
	sh->conn = sql_conn_new(&sh->set);
	sh->refs = 1;
	pthread_mutex_lock(&shared_lock);
	sh->next = shared_list;
	shared_list = sh;
	pthread_mutex_unlock(&shared_lock);
	return sh;
}

static void shared_put(struct db_shared **shp)
{
	struct db_shared *sh = *shp, **pp;

	if (sh == NULL)
		return;
	*shp = NULL;
	pthread_mutex_lock(&shared_lock);
	if (--sh->refs > 0) {
		pthread_mutex_unlock(&shared_lock);
		return;
	}
	for (pp = &shared_list; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == sh) {
			*pp = sh->next;
			break;
		}
	}
	pthread_mutex_unlock(&shared_lock);
	sql_conn_destroy(&sh->conn);
	sql_settings_free(&sh->set);
	free(sh->dsn);
	free(sh->pwfile);
	free(sh);
}

/* ---- the table object --------------------------------------------------- */

struct table_db;
typedef void db_lookup_fn(struct table_db *td, const char *key, struct table_result *r);

struct table_db {
	struct table t;
	db_lookup_fn *lookup;
	struct db_shared *sh;
};

/* Run query with one or two copies of param; rows' first column go to
 * rows (sorted, duplicates removed). false with r set to TEMPFAIL (and
 * the reason) on any database error. */
static bool run_query(struct table_db *td, const char *query, const char *param, size_t nparams,
                      strv_t *rows, struct table_result *r)
{
	const char *params[2] = {param, param};
	struct sql_result res;
	enum sql_status st;
	str_t why;

	str_init(&why);
	if (td->sh->set.type == SQL_SQLITE && !td->sh->file_seen) {
		/* Why check: SQLite would create a missing file, and an empty
		 * database answers "no such table" where the truth is "run
		 * postern db init". */
		if (db_sqlite_check(&td->sh->set, &why) < 0) {
			r->status = TABLE_TEMPFAIL;
			str_appendf(&r->error, "%s: %s", td->t.spec, str_c(&why));
			str_free(&why);
			return false;
		}
		td->sh->file_seen = true;
	}
	st = sql_query(td->sh->conn, query, params, nparams, DB_LOOKUP_ROWS_MAX, &res, &why);
	if (st != SQL_OK) {
		r->status = TABLE_TEMPFAIL;
		str_appendf(&r->error, "%s: %s", td->t.spec, str_c(&why));
		str_free(&why);
		return false;
	}
	str_free(&why);
	for (size_t i = 0; i < res.nrows; i++)
		if (res.ncols > 0 && sql_cell(&res, i, 0) != NULL)
			strv_add(rows, sql_cell(&res, i, 0));
	sql_result_free(&res);
	return true;
}

static int compare_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Set r to found with rows sorted, unique and joined by ",", or to not
 * found when rows is empty. Frees rows. */
static void answer(strv_t *rows, struct table_result *r)
{
	if (rows->n > 0) {
		qsort(rows->v, rows->n, sizeof(rows->v[0]), compare_str);
		r->status = TABLE_FOUND;
		str_reset(&r->value);
		for (size_t i = 0; i < rows->n; i++) {
			if (i > 0 && strcmp(rows->v[i], rows->v[i - 1]) == 0)
				continue;
			if (i > 0)
				str_append_c(&r->value, ',');
			str_append(&r->value, rows->v[i]);
		}
	} else {
		r->status = TABLE_NOTFOUND;
	}
	strv_free(rows);
}

/* One query, one parameter, the answer as is. */
static void simple(struct table_db *td, const char *query, const char *param,
                   struct table_result *r)
{
	strv_t rows = STRV_INIT;

	if (run_query(td, query, param, 1, &rows, r))
		answer(&rows, r);
	else
		strv_free(&rows);
}

/* The domain of a key: after the last '@' of an address or "@domain",
 * the key itself when it holds no '@'. NULL when empty. */
static const char *key_domain(const char *key)
{
	const char *at = strrchr(key, '@');
	const char *d = at != NULL ? at + 1 : key;

	return d[0] != '\0' ? d : NULL;
}

/* The target domain of alias domain `domain` into *target_r (caller
 * frees), NULL when it is none. false on a database error (r set). */
static bool alias_domain_target(struct table_db *td, const char *domain, char **target_r,
                                struct table_result *r)
{
	strv_t rows = STRV_INIT;

	*target_r = NULL;
	if (!run_query(td, q_alias_domain, domain, 1, &rows, r)) {
		strv_free(&rows);
		return false;
	}
	if (rows.n > 0)
		*target_r = xstrdup(rows.v[0]);
	strv_free(&rows);
	return true;
}

/* db:domains - a domain -> itself, when it is an active domain of ours
 * that is not a backup MX (virtual_mailbox_domains). Alias domains are
 * db:alias_domains; backup-MX domains are db:relay_domains. */
static void lookup_domains(struct table_db *td, const char *key, struct table_result *r)
{
	if (strchr(key, '@') == NULL)
		simple(td, q_domain, key, r);
}

/* db:relay_domains - a domain -> itself, when it is an active backup-MX
 * domain (relay_domains: accepted and relayed to its primary MX). */
static void lookup_relay_domains(struct table_db *td, const char *key, struct table_result *r)
{
	if (strchr(key, '@') == NULL)
		simple(td, q_relay_domain, key, r);
}

/* db:alias_domains - a domain -> itself, when it is an active alias
 * domain of an active domain (virtual_alias_domains). */
static void lookup_alias_domains(struct table_db *td, const char *key, struct table_result *r)
{
	char *target;

	if (strchr(key, '@') != NULL || !alias_domain_target(td, key, &target, r))
		return;
	if (target != NULL) {
		r->status = TABLE_FOUND;
		str_set(&r->value, key);
	}
	free(target);
}

/* db:mailboxes - an address -> its maildir path relative to
 * virtual_mailbox_base ("example.com/alice/"), for a live mailbox
 * (virtual_mailbox_maps). An address in an alias domain is no mailbox:
 * virtual_alias_maps (db:aliases) rewrites it to the target domain
 * first. */
static void lookup_mailboxes(struct table_db *td, const char *key, struct table_result *r)
{
	if (key[0] != '@' && strchr(key, '@') != NULL)
		simple(td, q_mailbox, key, r);
}

/* db:aliases - virtual_alias_maps, and virtual_alias_domains through
 * Postfix's default virtual_alias_domains = $virtual_alias_maps. The
 * caller (maps_lookup_addr) asks "user+ext@D", "user@D", then "@D".
 *
 *   key          the situation                            answer
 *   ----------   --------------------------------------   ----------------------
 *   user@D       active alias user@D (D active)           its targets, sorted, ","
 *   user@D       else: live mailbox user@D                user@D (itself)
 *   user@D       else: D alias domain of T, and user@T    user@T
 *                is an active alias or a live mailbox
 *   user@D       else                                     not found (-> "@D")
 *   @D           active catch-all @D                      its targets
 *   @D           else: D alias domain of T, active        the targets of @T
 *                catch-all @T
 *   @D           else                                     not found
 *   D (no @)     D an active alias domain of active T     T
 *   D (no @)     anything else (real domains too)         not found
 *
 * Why a mailbox answers itself: Postfix applies virtual_alias_maps, with
 * its "@D" catch-all, before virtual_mailbox_maps, so a catch-all would
 * swallow the mail of every existing mailbox. Answering "user@D -> user@D"
 * stops the search there (an address that maps to itself is delivered
 * as is): the PostfixAdmin convention. An explicit alias still wins, so
 * "user@D -> user@D, other@x" keeps a copy and forwards one.
 *
 * Why user@T only when it exists in T: answering user@T for every user
 * would send the unknown users of D to T, to be accepted and bounced
 * there. Not found lets the caller try "@D" (T's catch-all, if T has
 * one) and otherwise lets smtpd reject the unknown user at RCPT time.
 *
 * A bare D is found only for alias domains: a real domain found here
 * would also become a virtual_alias_domain, which Postfix forbids. */
static void lookup_aliases(struct table_db *td, const char *key, struct table_result *r)
{
	const char *at = strrchr(key, '@');
	const char *domain = key_domain(key);
	strv_t rows = STRV_INIT;
	char *target = NULL, *addr;

	if (domain == NULL)
		return;
	if (at == NULL) {
		if (alias_domain_target(td, key, &target, r) && target != NULL) {
			r->status = TABLE_FOUND;
			str_set(&r->value, target);
		}
		free(target);
		return;
	}
	if (!run_query(td, q_alias_targets, key, 1, &rows, r))
		goto out;
	if (rows.n > 0) {
		answer(&rows, r);
		goto out;
	}
	if (key[0] != '@') {
		if (!run_query(td, q_mailbox, key, 1, &rows, r))
			goto out;
		if (rows.n > 0) {
			r->status = TABLE_FOUND;
			str_set(&r->value, key);
			goto out;
		}
	}
	if (!alias_domain_target(td, domain, &target, r) || target == NULL)
		goto out;
	addr = xasprintf("%.*s@%s", (int)(at - key), key, target);
	if (key[0] == '@') {
		/* @D -> the targets of T's catch-all @T. */
		if (run_query(td, q_alias_targets, addr, 1, &rows, r))
			answer(&rows, r);
	} else if (run_query(td, q_alias_targets, addr, 1, &rows, r)) {
		/* user@D -> user@T when user@T is an alias or a mailbox. */
		if (rows.n == 0 && !run_query(td, q_mailbox, addr, 1, &rows, r)) {
			free(addr);
			goto out;
		}
		if (rows.n > 0) {
			r->status = TABLE_FOUND;
			str_set(&r->value, addr);
		}
	}
	free(addr);
out:
	strv_free(&rows);
	free(target);
}

/* db:quota - an address -> the quota of its live mailbox in bytes: its
 * own quota_bytes, or its domain's default_quota_bytes when that is NULL
 * (0 = unlimited). */
static void lookup_quota(struct table_db *td, const char *key, struct table_result *r)
{
	if (key[0] != '@' && strchr(key, '@') != NULL)
		simple(td, q_quota, key, r);
}

/* db:uid, db:gid - "user@D" or "@D" -> D's uid or gid when the domain
 * sets one; otherwise not found, so that a later table in the list
 * (virtual_uid_maps = db:uid, static:5000) answers. */
static void lookup_uid(struct table_db *td, const char *key, struct table_result *r)
{
	if (strchr(key, '@') != NULL && key_domain(key) != NULL)
		simple(td, q_uid, key_domain(key), r);
}

static void lookup_gid(struct table_db *td, const char *key, struct table_result *r)
{
	if (strchr(key, '@') != NULL && key_domain(key) != NULL)
		simple(td, q_gid, key_domain(key), r);
}

/* db:transport - a domain, or an address (its domain counts) -> the
 * domain's transport override ("lmtp:unix:private/dovecot-lmtp") when
 * the domain is active and sets one (transport_maps). */
static void lookup_transport(struct table_db *td, const char *key, struct table_result *r)
{
	const char *domain = key_domain(key);

	if (domain != NULL && domain[0] != '.')
		simple(td, q_transport, domain, r);
}

/* db:sender_login - smtpd_sender_login_maps: a sender address -> the
 * logins (mailbox addresses) allowed to use it, sorted, ",":
 *   - a live mailbox: itself;
 *   - an active alias (or "@D" catch-all): its targets that are live
 *     mailboxes (forwarding targets elsewhere cannot log in here);
 *   - both, when the address is both;
 *   - otherwise, in an alias domain D of T: the same answer for the
 *     address in T (alice may send as alice@D when D aliases her domain). */
static void lookup_sender_login(struct table_db *td, const char *key, struct table_result *r)
{
	const char *at = strrchr(key, '@');
	strv_t rows = STRV_INIT;
	char *target = NULL, *addr;

	if (at == NULL || at[1] == '\0')
		return;
	if (!run_query(td, q_sender_login, key, 2, &rows, r))
		goto out;
	if (rows.n > 0) {
		answer(&rows, r);
		goto out;
	}
	if (!alias_domain_target(td, at + 1, &target, r) || target == NULL)
		goto out;
	addr = xasprintf("%.*s@%s", (int)(at - key), key, target);
	if (run_query(td, q_sender_login, addr, 2, &rows, r))
		answer(&rows, r);
	free(addr);
out:
	strv_free(&rows);
	free(target);
}

static const struct {
	const char *name;
	db_lookup_fn *lookup;
} db_tables[] = {
        {"aliases", lookup_aliases},
        {"alias_domains", lookup_alias_domains},
        {"domains", lookup_domains},
        {"gid", lookup_gid},
        {"mailboxes", lookup_mailboxes},
        {"quota", lookup_quota},
        {"relay_domains", lookup_relay_domains},
        {"sender_login", lookup_sender_login},
        {"transport", lookup_transport},
        {"uid", lookup_uid},
};

static int db_open_table(struct table *t, const char *name, const struct table_open_context *ctx,
                         str_t *error)
{
	struct table_db *td = (struct table_db *)t;
	str_t why;

	for (size_t i = 0; i < sizeof(db_tables) / sizeof(db_tables[0]); i++)
		if (strcmp(name, db_tables[i].name) == 0)
			td->lookup = db_tables[i].lookup;
	if (td->lookup == NULL) {
		str_appendf(error, "unknown table \"db:%s\": expected db: followed by one of ",
		            name);
		for (size_t i = 0; i < sizeof(db_tables) / sizeof(db_tables[0]); i++)
			str_appendf(error, "%s%s", i > 0 ? ", " : "", db_tables[i].name);
		return -1;
	}
	if (ctx == NULL || ctx->cfg == NULL) {
		str_appendf(error, "db:%s: no configuration to find the database in", name);
		return -1;
	}
	str_init(&why);
	td->sh = shared_get(ctx->cfg, &why);
	if (td->sh == NULL) {
		str_appendf(error, "db:%s: %s", name, str_c(&why));
		str_free(&why);
		return -1;
	}
	str_free(&why);
	return 0;
}

static void db_lookup(struct table *t, const char *key, struct table_result *r)
{
	struct table_db *td = (struct table_db *)t;

	r->status = TABLE_NOTFOUND;
	td->lookup(td, key, r);
}

static void db_close(struct table *t)
{
	struct table_db *td = (struct table_db *)t;

	shared_put(&td->sh);
}

const struct table_backend table_backend_db = {
        .type = "db",
        .flags = TABLE_F_FIXED_KEYS | TABLE_F_REMOTE,
        .size = sizeof(struct table_db),
        .open = db_open_table,
        .lookup = db_lookup,
        .close = db_close,
};
