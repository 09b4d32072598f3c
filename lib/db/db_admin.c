/* db_admin.c - domain, mailbox and alias changes (see db_admin.h).
 *
 * Checks names, enforces the per-domain limits, runs parameterised
 * statements against postern's schema and records each change in
 * admin_log. Used by `postern domain|user|alias` and the web admin.
 *
 * On failure: a refused change touches nothing and says why in terms of
 * the command ("domain example.com does not exist"); a database error is
 * passed on with the server's message and its SQL_TEMPFAIL/SQL_FAIL
 * class. No password or hash ever appears in a message or admin_log.
 */
#include "db/db_admin.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/mem.h"
#include "base/parse.h"

/* ---- names ------------------------------------------------------------ */

static bool is_ldh(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

/* RFC 5322 atext (letters already lower-cased). */
static bool is_atext(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

static char *lower_copy(const char *s)
{
	char *copy = xstrdup(s);

	for (char *p = copy; *p != '\0'; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	return copy;
}

/* Check a lower-cased domain in place (a trailing dot cut); NULL or why. */
static const char *domain_problem(char *d)
{
	size_t len = strlen(d), label = 0;

	if (len > 0 && d[len - 1] == '.')
		d[--len] = '\0';
	if (len == 0)
		return "empty domain name";
	if (len > DB_DOMAIN_MAX)
		return "domain name longer than 253 characters";
	for (size_t i = 0; i <= len; i++) {
		char c = d[i];

		if (c == '.' || c == '\0') {
			if (label == 0)
				return "empty label (two dots, or a dot at the start)";
			if (label > 63)
				return "label longer than 63 characters";
			if (d[i - 1] == '-' || d[i - label] == '-')
				return "label starting or ending with '-'";
			label = 0;
		} else if ((unsigned char)c >= 0x80) {
			return "non-ASCII name: give the IDNA A-label (xn--...)";
		} else if (!is_ldh(c)) {
			return "only letters, digits, '-' and '.' are allowed";
		} else {
			label++;
		}
	}
	return NULL;
}

char *db_domain_normalise(const char *name, str_t *error)
{
	char *d = lower_copy(name);
	const char *why = domain_problem(d);

	if (why != NULL) {
		str_appendf(error, "bad domain name \"%s\": %s", name, why);
		free(d);
		return NULL;
	}
	return d;
}

static const char *local_part_problem(const char *l, size_t len)
{
	if (len == 0)
		return "empty local part";
	if (len > DB_LOCAL_PART_MAX)
		return "local part longer than 64 characters";
	if (l[0] == '.' || l[len - 1] == '.')
		return "local part starting or ending with '.'";
	for (size_t i = 0; i < len; i++) {
		if (l[i] == '.') {
			if (l[i + 1] == '.')
				return "two dots in a row in the local part";
		} else if (l[i] == '"' || l[i] == '\\') {
			return "quoted local parts are not supported";
		} else if ((unsigned char)l[i] >= 0x80) {
			return "non-ASCII local part";
		} else if (!is_atext(l[i])) {
			return "character not allowed in a local part";
		}
	}
	return NULL;
}

char *db_address_normalise(const char *address, bool allow_catchall, str_t *error)
{
	char *a = lower_copy(address);
	char *at = strrchr(a, '@');
	const char *why = NULL;

	if (at == NULL)
		why = "expected local@domain";
	else if (at == a && !allow_catchall)
		why = "expected local@domain (a catch-all @domain is not allowed here)";
	else if (at != a)
		why = local_part_problem(a, (size_t)(at - a));
	if (why == NULL)
		why = domain_problem(at + 1);
	if (why == NULL && strlen(a) > DB_ADDRESS_MAX)
		why = "address longer than 254 characters";
	if (why != NULL) {
		str_appendf(error, "bad address \"%s\": %s", address, why);
		free(a);
		return NULL;
	}
	return a; /* lower case, the domain's trailing dot cut */
}

bool db_bool(const char *value)
{
	return value != NULL &&
	       (strcmp(value, "1") == 0 || strcmp(value, "t") == 0 || strcmp(value, "true") == 0);
}

/* ---- helpers ------------------------------------------------------------ */

static char *u64_text(uint64_t v)
{
	return xasprintf("%" PRIu64, v);
}

/* Run a statement; rows (may be NULL) are the caller's. */
static enum sql_status run(const struct db_admin *a, const char *query, const char *const *params,
                           size_t nparams, struct sql_result *rows, str_t *error)
{
	return sql_query(a->conn, query, params, nparams, 0, rows, error);
}

/* The first column of the first row as an unsigned number, or 0. */
static uint64_t cell_u64(const struct sql_result *res, size_t col)
{
	uint64_t v = 0;

	if (res->nrows > 0 && col < res->ncols && sql_cell(res, 0, col) != NULL)
		(void)parse_uint64(sql_cell(res, 0, col), 0, UINT64_MAX, &v);
	return v;
}

/* Does query with one parameter return a row? */
static enum sql_status exists(const struct db_admin *a, const char *query, const char *param,
                              bool *found_r, str_t *error)
{
	struct sql_result res;
	enum sql_status st = run(a, query, &param, 1, &res, error);

	*found_r = st == SQL_OK && res.nrows > 0;
	sql_result_free(&res);
	return st;
}

/* Record a change in admin_log; a failure there is logged, not returned:
 * the change itself is already made. */
static void audit(const struct db_admin *a, const char *domain, const char *action,
                  const char *data)
{
	const char *params[] = {a->actor != NULL ? a->actor : "unknown", domain, action, data};
	str_t why;

	str_init(&why);
	if (run(a, "INSERT INTO admin_log (admin, domain, action, data) VALUES (?, ?, ?, ?)",
	        params, 4, NULL, &why) != SQL_OK)
		log_warning("%s %s done, but recording it in admin_log failed: %s", action, data,
		            str_c(&why));
	str_free(&why);
}

/* Normalise booleans of column col to "1"/"0" (PostgreSQL says t/f). */
static void bool_column(struct sql_result *res, size_t col)
{
	for (size_t i = 0; i < res->nrows; i++) {
		char **cell = &res->cells[i * res->ncols + col];
		bool v = db_bool(*cell);

		free(*cell);
		*cell = xstrdup(v ? "1" : "0");
	}
}

static const char q_domain_exists[] = "SELECT id FROM domains WHERE name = ?";
static const char q_alias_domain_exists[] = "SELECT id FROM alias_domains WHERE name = ?";
static const char q_mailbox_exists[] = "SELECT id FROM mailboxes WHERE address = ?";
static const char q_alias_exists[] = "SELECT id FROM aliases WHERE address = ?";

/* The domain of an address must be one of our domains (not an alias
 * domain). SQL_FAIL with a message saying what to do otherwise. */
static enum sql_status need_domain(const struct db_admin *a, const char *domain, str_t *error)
{
	enum sql_status st;
	bool found;

	st = exists(a, q_domain_exists, domain, &found, error);
	if (st != SQL_OK || found)
		return st;
	st = exists(a, q_alias_domain_exists, domain, &found, error);
	if (st != SQL_OK)
		return st;
	if (found)
		str_appendf(error,
		            "%s is an alias domain: its addresses follow its target domain; add "
		            "them there",
		            domain);
	else
		str_appendf(error, "domain %s does not exist (add it first: postern domain add %s)",
		            domain, domain);
	return SQL_FAIL;
}

/* ---- domains ------------------------------------------------------------ */

enum sql_status db_domain_add(const struct db_admin *a, const char *name,
                              const struct db_domain_spec *spec, str_t *error)
{
	enum sql_status st;
	bool found;

	st = exists(a, q_domain_exists, name, &found, error);
	if (st == SQL_OK && !found)
		st = exists(a, q_alias_domain_exists, name, &found, error);
	if (st != SQL_OK)
		return st;
	if (found) {
		str_appendf(error, "domain %s already exists", name);
		return SQL_FAIL;
	}
	if (spec->alias_of != NULL) {
		const char *params[] = {name, spec->alias_of};

		st = need_domain(a, spec->alias_of, error);
		if (st != SQL_OK)
			return st;
		st = run(a,
		         "INSERT INTO alias_domains (name, target_domain_id) "
		         "SELECT ?, id FROM domains WHERE name = ?",
		         params, 2, NULL, error);
		if (st == SQL_OK)
			audit(a, name, "create_alias_domain", spec->alias_of);
		return st;
	}

	char *quota = u64_text(spec->default_quota_bytes);
	char *maxm = u64_text(spec->max_mailboxes), *maxa = u64_text(spec->max_aliases);
	char *uid = spec->has_uid ? u64_text(spec->uid) : NULL;
	char *gid = spec->has_gid ? u64_text(spec->gid) : NULL;
	const char *params[] = {
	        name,
	        spec->description != NULL ? spec->description : "",
	        quota,
	        maxm,
	        maxa,
	        spec->transport,
	        spec->backup_mx ? "1" : "0",
	        uid,
	        gid,
	};

	/* backup_mx is bound as "1"/"0": an INTEGER on SQLite and MariaDB,
	 * and a valid BOOLEAN input on PostgreSQL. */
	st = run(a,
	         "INSERT INTO domains (name, description, default_quota_bytes, max_mailboxes, "
	         "max_aliases, transport, backup_mx, uid, gid) "
	         "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
	         params, 9, NULL, error);
	if (st == SQL_OK)
		audit(a, name, "create_domain", name);
	free(quota);
	free(maxm);
	free(maxa);
	free(uid);
	free(gid);
	return st;
}

enum sql_status db_domain_del(const struct db_admin *a, const char *name, bool force, str_t *error)
{
	struct sql_result res;
	enum sql_status st;
	uint64_t nmail, nalias;
	bool found;

	st = exists(a, q_alias_domain_exists, name, &found, error);
	if (st != SQL_OK)
		return st;
	if (found) {
		st = run(a, "DELETE FROM alias_domains WHERE name = ?", &name, 1, NULL, error);
		if (st == SQL_OK)
			audit(a, name, "delete_alias_domain", name);
		return st;
	}
	st = run(a,
	         "SELECT (SELECT COUNT(*) FROM mailboxes m WHERE m.domain_id = d.id), "
	         "(SELECT COUNT(*) FROM aliases x WHERE x.domain_id = d.id) "
	         "FROM domains d WHERE d.name = ?",
	         &name, 1, &res, error);
	if (st != SQL_OK)
		return st;
	if (res.nrows == 0) {
		sql_result_free(&res);
		str_appendf(error, "domain %s does not exist", name);
		return SQL_FAIL;
	}
	nmail = cell_u64(&res, 0);
	nalias = cell_u64(&res, 1);
	sql_result_free(&res);
	if ((nmail > 0 || nalias > 0) && !force) {
		str_appendf(error,
		            "domain %s still has %" PRIu64 " mailbox%s and %" PRIu64
		            " alias%s: delete them first, or use --force to delete them with it",
		            name, nmail, nmail == 1 ? "" : "es", nalias, nalias == 1 ? "" : "es");
		return SQL_FAIL;
	}
	/* The schema's ON DELETE CASCADE removes mailboxes, aliases, their
	 * targets, alias domains and domain admin grants with it. */
	st = run(a, "DELETE FROM domains WHERE name = ?", &name, 1, NULL, error);
	if (st == SQL_OK)
		audit(a, name, "delete_domain", name);
	return st;
}

enum sql_status db_domain_list(const struct db_admin *a, struct sql_result *domains,
                               struct sql_result *alias_domains, str_t *error)
{
	enum sql_status st;

	memset(alias_domains, 0, sizeof(*alias_domains));
	st = run(a,
	         "SELECT d.name, d.active, d.backup_mx, d.description, d.default_quota_bytes, "
	         "d.max_mailboxes, d.max_aliases, "
	         "(SELECT COUNT(*) FROM mailboxes m WHERE m.domain_id = d.id), "
	         "(SELECT COUNT(*) FROM aliases x WHERE x.domain_id = d.id), d.transport "
	         "FROM domains d ORDER BY d.name",
	         NULL, 0, domains, error);
	if (st != SQL_OK)
		return st;
	bool_column(domains, 1);
	bool_column(domains, 2);
	st = run(a,
	         "SELECT ad.name, d.name, ad.active FROM alias_domains ad "
	         "JOIN domains d ON d.id = ad.target_domain_id ORDER BY ad.name",
	         NULL, 0, alias_domains, error);
	if (st != SQL_OK) {
		sql_result_free(domains);
		return st;
	}
	bool_column(alias_domains, 2);
	return SQL_OK;
}

/* ---- mailboxes ---------------------------------------------------------- */

enum sql_status db_mailbox_check_new(const struct db_admin *a, const char *address, str_t *error)
{
	const char *at = strrchr(address, '@');
	struct sql_result res;
	enum sql_status st;
	bool found;

	if (at == NULL || at == address) {
		str_appendf(error, "bad mailbox address \"%s\"", address);
		return SQL_FAIL;
	}
	/* Why: the maildir is domain/local/, and a '/' would nest it. */
	if (memchr(address, '/', (size_t)(at - address)) != NULL) {
		str_appendf(error,
		            "bad mailbox address \"%s\": '/' is not allowed in a mailbox name",
		            address);
		return SQL_FAIL;
	}
	st = need_domain(a, at + 1, error);
	if (st == SQL_OK)
		st = exists(a, q_mailbox_exists, address, &found, error);
	if (st == SQL_OK && found) {
		str_appendf(error, "mailbox %s already exists", address);
		st = SQL_FAIL;
	}
	if (st != SQL_OK)
		return st;
	st = run(a,
	         "SELECT d.max_mailboxes, (SELECT COUNT(*) FROM mailboxes m WHERE m.domain_id = "
	         "d.id) FROM domains d WHERE d.name = ?",
	         (const char *const[]){at + 1}, 1, &res, error);
	if (st != SQL_OK)
		return st;
	if (cell_u64(&res, 0) > 0 && cell_u64(&res, 1) >= cell_u64(&res, 0)) {
		str_appendf(error, "domain %s already has its maximum of %" PRIu64 " mailboxes",
		            at + 1, cell_u64(&res, 0));
		st = SQL_FAIL;
	}
	sql_result_free(&res);
	return st;
}

enum sql_status db_mailbox_add(const struct db_admin *a, const char *address,
                               const char *password_hash, const char *name,
                               const uint64_t *quota_bytes, str_t *error)
{
	const char *at = strrchr(address, '@');
	char *local, *maildir, *quota;
	enum sql_status st;

	st = db_mailbox_check_new(a, address, error);
	if (st != SQL_OK)
		return st;
	local = xstrndup(address, (size_t)(at - address));
	maildir = xasprintf("%s/%s/", at + 1, local);
	quota = quota_bytes != NULL ? u64_text(*quota_bytes) : NULL;
	const char *params[] = {local, address, password_hash, name != NULL ? name : "",
	                        quota, maildir, at + 1};
	st = run(a,
	         "INSERT INTO mailboxes (domain_id, local_part, address, password, name, "
	         "quota_bytes, maildir) SELECT id, ?, ?, ?, ?, ?, ? FROM domains WHERE name = ?",
	         params, 7, NULL, error);
	if (st == SQL_OK)
		audit(a, at + 1, "create_mailbox", address);
	free(quota);
	free(maildir);
	free(local);
	return st;
}

enum sql_status db_mailbox_check_exists(const struct db_admin *a, const char *address, str_t *error)
{
	enum sql_status st;
	bool found;

	st = exists(a, q_mailbox_exists, address, &found, error);
	if (st == SQL_OK && !found) {
		str_appendf(error, "mailbox %s does not exist", address);
		st = SQL_FAIL;
	}
	return st;
}

enum sql_status db_mailbox_passwd(const struct db_admin *a, const char *address,
                                  const char *password_hash, str_t *error)
{
	const char *params[] = {password_hash, address};
	const char *at = strrchr(address, '@');
	enum sql_status st;

	st = db_mailbox_check_exists(a, address, error);
	if (st != SQL_OK)
		return st;
	st = run(a,
	         "UPDATE mailboxes SET password = ?, modified_at = CURRENT_TIMESTAMP "
	         "WHERE address = ?",
	         params, 2, NULL, error);
	if (st == SQL_OK)
		audit(a, at != NULL ? at + 1 : NULL, "edit_password", address);
	return st;
}

enum sql_status db_mailbox_del(const struct db_admin *a, const char *address, str_t *error)
{
	const char *at = strrchr(address, '@');
	enum sql_status st;

	st = db_mailbox_check_exists(a, address, error);
	if (st != SQL_OK)
		return st;
	st = run(a, "DELETE FROM mailboxes WHERE address = ?", &address, 1, NULL, error);
	if (st == SQL_OK)
		audit(a, at != NULL ? at + 1 : NULL, "delete_mailbox", address);
	return st;
}

enum sql_status db_mailbox_list(const struct db_admin *a, const char *domain,
                                struct sql_result *res, str_t *error)
{
	enum sql_status st;

	st = run(a,
	         domain != NULL
	                 ? "SELECT m.address, m.name, m.quota_bytes, COALESCE(m.quota_bytes, "
	                   "d.default_quota_bytes), m.active, m.maildir FROM mailboxes m JOIN "
	                   "domains d ON d.id = m.domain_id WHERE d.name = ? ORDER BY m.address"
	                 : "SELECT m.address, m.name, m.quota_bytes, COALESCE(m.quota_bytes, "
	                   "d.default_quota_bytes), m.active, m.maildir FROM mailboxes m JOIN "
	                   "domains d ON d.id = m.domain_id ORDER BY m.address",
	         &domain, domain != NULL ? 1 : 0, res, error);
	if (st == SQL_OK)
		bool_column(res, 4);
	return st;
}

/* ---- aliases ------------------------------------------------------------ */

enum sql_status db_alias_add(const struct db_admin *a, const char *address,
                             const char *const *targets, size_t ntargets, str_t *error)
{
	const char *domain = strrchr(address, '@');
	struct sql_result res;
	enum sql_status st;
	bool found;

	if (domain == NULL) {
		str_appendf(error, "bad alias address \"%s\"", address);
		return SQL_FAIL;
	}
	domain++;
	st = need_domain(a, domain, error);
	if (st == SQL_OK)
		st = exists(a, q_alias_exists, address, &found, error);
	if (st != SQL_OK)
		return st;
	if (!found) {
		st = run(
		        a,
		        "SELECT d.max_aliases, (SELECT COUNT(*) FROM aliases x WHERE x.domain_id = "
		        "d.id) FROM domains d WHERE d.name = ?",
		        &domain, 1, &res, error);
		if (st != SQL_OK)
			return st;
		if (cell_u64(&res, 0) > 0 && cell_u64(&res, 1) >= cell_u64(&res, 0)) {
			str_appendf(error,
			            "domain %s already has its maximum of %" PRIu64 " aliases",
			            domain, cell_u64(&res, 0));
			sql_result_free(&res);
			return SQL_FAIL;
		}
		sql_result_free(&res);
		st = run(a,
		         "INSERT INTO aliases (domain_id, address) SELECT id, ? FROM domains "
		         "WHERE name = ?",
		         (const char *const[]){address, domain}, 2, NULL, error);
		if (st != SQL_OK)
			return st;
		audit(a, domain, "create_alias", address);
	}
	for (size_t i = 0; i < ntargets; i++) {
		const char *params[] = {address, targets[i]};

		st = run(a,
		         "SELECT t.id FROM alias_targets t JOIN aliases x ON x.id = t.alias_id "
		         "WHERE x.address = ? AND t.target = ?",
		         params, 2, &res, error);
		if (st != SQL_OK)
			return st;
		found = res.nrows > 0;
		sql_result_free(&res);
		if (found)
			continue;
		st = run(a,
		         "INSERT INTO alias_targets (alias_id, target) SELECT id, ? FROM aliases "
		         "WHERE address = ?",
		         (const char *const[]){targets[i], address}, 2, NULL, error);
		if (st != SQL_OK)
			return st;
		audit(a, domain, "add_alias_target", targets[i]);
	}
	return SQL_OK;
}

enum sql_status db_alias_del(const struct db_admin *a, const char *address, const char *target,
                             str_t *error)
{
	const char *at = strrchr(address, '@');
	const char *domain = at != NULL ? at + 1 : NULL;
	struct sql_result res;
	enum sql_status st;
	bool found;

	st = exists(a, q_alias_exists, address, &found, error);
	if (st != SQL_OK)
		return st;
	if (!found) {
		str_appendf(error, "alias %s does not exist", address);
		return SQL_FAIL;
	}
	if (target != NULL) {
		const char *params[] = {address, target};

		st = run(a,
		         "SELECT t.id FROM alias_targets t JOIN aliases x ON x.id = t.alias_id "
		         "WHERE x.address = ? AND t.target = ?",
		         params, 2, &res, error);
		if (st != SQL_OK)
			return st;
		found = res.nrows > 0;
		sql_result_free(&res);
		if (!found) {
			str_appendf(error, "alias %s has no target %s", address, target);
			return SQL_FAIL;
		}
		st = run(a,
		         "DELETE FROM alias_targets WHERE target = ? AND alias_id IN "
		         "(SELECT id FROM aliases WHERE address = ?)",
		         (const char *const[]){target, address}, 2, NULL, error);
		if (st != SQL_OK)
			return st;
		audit(a, domain, "delete_alias_target", target);
		st = run(a,
		         "SELECT t.id FROM alias_targets t JOIN aliases x ON x.id = t.alias_id "
		         "WHERE x.address = ?",
		         &address, 1, &res, error);
		if (st != SQL_OK)
			return st;
		found = res.nrows > 0;
		sql_result_free(&res);
		if (found)
			return SQL_OK;
		/* The last target is gone: an alias to nowhere would only hide
		 * a catch-all, so it goes too. */
	}
	st = run(a, "DELETE FROM aliases WHERE address = ?", &address, 1, NULL, error);
	if (st == SQL_OK)
		audit(a, domain, "delete_alias", address);
	return st;
}

enum sql_status db_alias_list(const struct db_admin *a, const char *domain, struct sql_result *res,
                              str_t *error)
{
	enum sql_status st;

	st = run(a,
	         domain != NULL
	                 ? "SELECT x.address, t.target, x.active FROM aliases x JOIN domains d ON "
	                   "d.id = x.domain_id LEFT JOIN alias_targets t ON t.alias_id = x.id "
	                   "WHERE d.name = ? ORDER BY x.address, t.target"
	                 : "SELECT x.address, t.target, x.active FROM aliases x LEFT JOIN "
	                   "alias_targets t ON t.alias_id = x.id ORDER BY x.address, t.target",
	         &domain, domain != NULL ? 1 : 0, res, error);
	if (st == SQL_OK)
		bool_column(res, 2);
	return st;
}
