/* smtpd_forbid.c - smtpd_forbidden_commands: the first words that end a
 * session at once (a web browser, a proxy probe, a mail header sent as a
 * command).
 *
 * smtpd.c builds one list per listener; smtpd_session.c asks it about
 * every command it does not know. Like Postfix, a word that looks like a
 * header name ("Subject:") always matches; then the list is tried in
 * order: a word matches case-insensitively, "!word" ends the search with
 * no match, and a type:table matches when it has the word. Only local
 * tables (regexp, pcre, inline, texthash, cidr, static) may be listed:
 * the check runs synchronously for every unknown command and must not
 * wait for a database.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/mem.h"
#include "base/strv.h"
#include "conf/config.h"
#include "smtpd.h"
#include "table/table.h"
#include "table/table_file.h"

struct smtpd_forbid_elem {
	bool neg;
	char *word; /* NULL for a table */
	struct table *table;
};

struct smtpd_forbidden {
	struct smtpd_forbid_elem *v;
	size_t n;
};

void smtpd_forbidden_free(struct smtpd_forbidden **fp)
{
	struct smtpd_forbidden *f = *fp;

	if (f == NULL)
		return;
	for (size_t i = 0; i < f->n; i++) {
		free(f->v[i].word);
		table_close(&f->v[i].table);
	}
	free(f->v);
	free(f);
	*fp = NULL;
}

/* The backend of "type:name", or NULL (table_open() names the error). */
static const struct table_backend *backend_of(const char *spec)
{
	char *type = xstrndup(spec, strcspn(spec, ":"));
	const struct table_backend *b = table_backend_find(type);

	free(type);
	return b;
}

int smtpd_forbidden_new(struct config *cfg, const char *config_dir, struct smtpd_forbidden **fp,
                        str_t *error)
{
	const char *param = "smtpd_forbidden_commands";
	struct table_open_context tctx = {.cfg = cfg, .config_dir = config_dir};
	struct smtpd_forbidden *f = xcalloc(1, sizeof(*f));
	strv_t elems = STRV_INIT;
	const char *value = config_str(cfg, param);

	*fp = NULL;
	if (table_list_split(&elems, value, error) < 0)
		goto fail;
	f->v = xcalloc(elems.n + 1, sizeof(*f->v));
	for (size_t i = 0; i < elems.n; i++) {
		struct smtpd_forbid_elem *e = &f->v[f->n];
		const char *text = elems.v[i];
		const struct table_backend *backend;

		if (text[0] == '!') {
			e->neg = true;
			text++;
		}
		f->n++;
		if (strchr(text, ':') == NULL) {
			e->word = xstrdup(text);
			continue;
		}
		backend = backend_of(text);
		if (backend != NULL && (backend->flags & TABLE_F_REMOTE) != 0) {
			str_appendf(
			        error,
			        "%s: %s: only local tables (regexp, pcre, inline, texthash, cidr, "
			        "static) can be used here: every unknown command is checked "
			        "without waiting",
			        param, text);
			goto fail;
		}
		e->table = table_open(text, &tctx, error);
		if (e->table == NULL)
			goto fail;
	}
	strv_free(&elems);
	*fp = f;
	return 0;
fail:
	if (error->len > 0 && strncmp(str_c(error), param, strlen(param)) != 0) {
		str_t msg;

		str_init(&msg);
		str_appendf(&msg, "%s: %s", param, str_c(error));
		str_set(error, str_c(&msg));
		str_free(&msg);
	}
	strv_free(&elems);
	smtpd_forbidden_free(&f);
	return -1;
}

/* Postfix's is_header(): a header name (printable ASCII but ':') right
 * before a colon. */
static bool looks_like_header(const char *word, size_t len)
{
	size_t i = 0;

	while (i < len && word[i] > ' ' && word[i] < 127 && word[i] != ':')
		i++;
	return i > 0 && i < len && word[i] == ':';
}

bool smtpd_forbidden_match(const struct smtpd_forbidden *f, const char *word, size_t len)
{
	char *key;
	bool match = false;

	if (looks_like_header(word, len))
		return true;
	if (f == NULL)
		return false;
	key = xstrndup(word, len);
	for (size_t i = 0; i < f->n && !match; i++) {
		const struct smtpd_forbid_elem *e = &f->v[i];
		bool hit;

		if (e->word != NULL) {
			hit = strcasecmp(e->word, key) == 0;
		} else {
			struct table_result r;

			table_result_init(&r);
			table_lookup(e->table, key, &r);
			hit = r.status == TABLE_FOUND;
			table_result_free(&r);
		}
		if (hit && e->neg)
			break;
		match = hit;
	}
	free(key);
	return match;
}
