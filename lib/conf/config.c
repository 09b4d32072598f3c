/* config.c - main.cf parsing, expansion and typed access (see config.h).
 *
 * Used by every program through its startup code and by `postern conf` and
 * `postern check`. Parsing never stops at the first bad line: every problem
 * is reported with file and line so an administrator fixes them in one go.
 * A failed expansion or type check leaves the config unchanged; only the
 * daemon-side getters turn it into a fatal error.
 */
#include "conf/config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "base/fs.h"
#include "base/hash.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/parse.h"

struct config_entry {
	char *value; /* as written; NULL for an unset parameter's cache slot */
	char *where; /* "FILE, line N", an override origin, or "default" */
	bool set;
	bool expanding; /* loop guard during expansion */
	char *expanded; /* cache */
	strv_t list; /* cache of the split list */
	bool list_valid;
};

struct config {
	hash_t *entries; /* name -> struct config_entry */
	char *config_dir;
	strv_t warnings;
	hash_t *referenced; /* names seen as $name during expansion */
	str_t error; /* text behind the last *error_r */
	char *computed; /* last computed dynamic default */
};

static void entry_free(void *p)
{
	struct config_entry *e = p;

	free(e->value);
	free(e->where);
	free(e->expanded);
	strv_free(&e->list);
	free(e);
}

static struct config *config_new(const char *config_dir)
{
	struct config *cfg = xcalloc(1, sizeof(*cfg));

	cfg->entries = hash_new(entry_free);
	cfg->referenced = hash_new(NULL);
	cfg->config_dir = xstrdup(config_dir);
	str_init(&cfg->error);
	return cfg;
}

void config_destroy(struct config **cfgp)
{
	struct config *cfg = *cfgp;

	if (cfg == NULL)
		return;
	hash_destroy(&cfg->entries);
	hash_destroy(&cfg->referenced);
	strv_free(&cfg->warnings);
	str_free(&cfg->error);
	free(cfg->config_dir);
	free(cfg->computed);
	free(cfg);
	*cfgp = NULL;
}

static void drop_caches(struct config *cfg)
{
	size_t pos = 0;
	const char *name;
	void *value;

	while (hash_next(cfg->entries, &pos, &name, &value)) {
		struct config_entry *e = value;

		xfree(&e->expanded);
		strv_free(&e->list);
		e->list_valid = false;
	}
}

static struct config_entry *entry_get(struct config *cfg, const char *name)
{
	struct config_entry *e = hash_get(cfg->entries, name);

	if (e == NULL) {
		e = xcalloc(1, sizeof(*e));
		hash_put(cfg->entries, name, e);
	}
	return e;
}

void config_set(struct config *cfg, const char *name, const char *value, const char *origin)
{
	struct config_entry *e = entry_get(cfg, name);

	free(e->value);
	free(e->where);
	e->value = xstrdup(value);
	e->where = xstrdup(origin);
	e->set = true;
	drop_caches(cfg);
}

struct config *config_clone(const struct config *cfg)
{
	struct config *copy = config_new(cfg->config_dir);
	size_t pos = 0;
	const char *name;
	void *value;

	while (hash_next(cfg->entries, &pos, &name, &value)) {
		const struct config_entry *e = value;

		if (e->set)
			config_set(copy, name, e->value, e->where);
	}
	for (size_t i = 0; i < cfg->warnings.n; i++)
		strv_add(&copy->warnings, cfg->warnings.v[i]);
	return copy;
}

const strv_t *config_parse_warnings(const struct config *cfg)
{
	return &cfg->warnings;
}

/* ---- parsing ---------------------------------------------------------- */

static bool is_name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_';
}

/* A character of a name set in main.cf. Why also '-' and '.': Postfix
 * takes any name there, and per-service parameters are built from
 * master.cf service names, which often hold them (policy-spf_time_limit,
 * smtp-amavis_destination_concurrency_limit; config_validate() knows them
 * by their service). $name expansion (is_name_char) still stops at them,
 * as in Postfix. */
static bool is_entry_name_char(char c)
{
	return is_name_char(c) || c == '-' || c == '.';
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

/* One logical line "name = value" that starts at line `line`. */
static void parse_entry(struct config *cfg, str_t *logical, const char *filename, unsigned line,
                        strv_t *errors)
{
	const char *p = str_c(logical), *name_start, *name_end, *value;
	char *name;
	struct config_entry *old;
	str_t where;

	if (logical->len > CONFIG_LINE_MAX) {
		strv_add_owned(errors, xasprintf("%s, line %u: entry longer than %d bytes",
		                                 filename, line, CONFIG_LINE_MAX));
		return;
	}
	name_start = p;
	while (*p != '\0' && *p != '=' && !is_space(*p))
		p++;
	name_end = p;
	while (is_space(*p))
		p++;
	if (*p != '=') {
		strv_add_owned(errors,
		               xasprintf("%s, line %u: missing '=' after parameter name \"%.*s\"",
		                         filename, line, (int)(name_end - name_start), name_start));
		return;
	}
	if (name_end == name_start) {
		strv_add_owned(errors, xasprintf("%s, line %u: missing parameter name before '='",
		                                 filename, line));
		return;
	}
	for (const char *q = name_start; q < name_end; q++) {
		if (!is_entry_name_char(*q)) {
			strv_add_owned(
			        errors,
			        xasprintf("%s, line %u: bad parameter name \"%.*s\": expected "
			                  "letters, digits, '_', '-' and '.'",
			                  filename, line, (int)(name_end - name_start),
			                  name_start));
			return;
		}
	}
	value = p + 1;
	while (is_space(*value))
		value++;
	name = xstrndup(name_start, (size_t)(name_end - name_start));
	old = hash_get(cfg->entries, name);
	if (old != NULL && old->set)
		strv_add_owned(&cfg->warnings,
		               xasprintf("%s, line %u: overriding earlier entry: %s=%s", filename,
		                         line, name, old->value));
	str_init(&where);
	str_appendf(&where, "%s, line %u", filename, line);
	config_set(cfg, name, value, str_c(&where));
	str_free(&where);
	free(name);
}

int config_parse_text(const char *text, size_t len, const char *filename, const char *config_dir,
                      struct config **cfg_r, strv_t *errors)
{
	struct config *cfg = config_new(config_dir);
	size_t nerrors = errors->n, pos = 0;
	unsigned lineno = 0, entry_line = 0;
	str_t logical;
	bool have_entry = false;

	str_init(&logical);
	while (pos < len) {
		const char *line = text + pos;
		const char *nl = memchr(line, '\n', len - pos);
		size_t llen = nl != NULL ? (size_t)(nl - line) : len - pos;
		size_t i = 0;

		pos += llen + (nl != NULL);
		lineno++;
		if (memchr(line, '\0', llen) != NULL) {
			strv_add_owned(errors, xasprintf("%s, line %u: NUL byte in line", filename,
			                                 lineno));
			continue;
		}
		if (llen > 0 && line[llen - 1] == '\r')
			llen--;
		while (i < llen && is_space(line[i]))
			i++;
		if (i == llen || line[i] == '#')
			continue; /* blank or comment, also inside a continuation */
		if (i > 0) {
			if (!have_entry) {
				strv_add_owned(
				        errors,
				        xasprintf("%s, line %u: continuation line (it starts "
				                  "with white space) without a parameter "
				                  "before it",
				                  filename, lineno));
				continue;
			}
			if (logical.len <= CONFIG_LINE_MAX) {
				str_append_c(&logical, ' ');
				str_append_n(&logical, line + i, llen - i);
			}
			continue;
		}
		if (have_entry) {
			str_trim(&logical);
			parse_entry(cfg, &logical, filename, entry_line, errors);
		}
		str_reset(&logical);
		str_append_n(&logical, line, llen);
		have_entry = true;
		entry_line = lineno;
	}
	if (have_entry) {
		str_trim(&logical);
		parse_entry(cfg, &logical, filename, entry_line, errors);
	}
	str_free(&logical);
	*cfg_r = cfg;
	return errors->n > nerrors ? -1 : 0;
}

int config_load(const char *config_dir, struct config **cfg_r, strv_t *errors)
{
	char *path = xasprintf("%s/main.cf", config_dir);
	str_t text, error;
	int ret;

	str_init(&text);
	str_init(&error);
	if (fs_read_file(path, CONFIG_FILE_MAX, &text, &error) < 0) {
		strv_add(errors, str_c(&error));
		*cfg_r = config_new(config_dir);
		ret = -1;
	} else {
		ret = config_parse_text(text.buf, text.len, path, config_dir, cfg_r, errors);
	}
	free(path);
	str_free(&text);
	str_free(&error);
	return ret;
}

/* ---- raw values and defaults ------------------------------------------ */

bool config_is_set(const struct config *cfg, const char *name)
{
	const struct config_entry *e = hash_get(cfg->entries, name);

	return e != NULL && e->set;
}

static const char *host_name(struct config *cfg)
{
	char buf[256];

	if (gethostname(buf, sizeof(buf)) != 0 || buf[0] == '\0')
		snprintf(buf, sizeof(buf), "localhost");
	buf[sizeof(buf) - 1] = '\0';
	free(cfg->computed);
	cfg->computed = strchr(buf, '.') != NULL ? xstrdup(buf) : xasprintf("%s.localdomain", buf);
	return cfg->computed;
}

static int expand_name(struct config *cfg, const char *name, const char **value_r, int depth);

/* The default text of a known parameter, dynamic ones computed now.
 * mydomain's default depends on myhostname's value, so computing it is
 * part of an expansion: depth carries the caller's nesting so that a loop
 * (myhostname = $mydomain) is reported, not followed. */
static int default_text(struct config *cfg, const struct param_def *def, int depth,
                        const char **text_r)
{
	const char *host, *dot;

	switch (def->dynamic) {
	case PARAM_DYN_HOSTNAME:
		*text_r = host_name(cfg);
		return 0;
	case PARAM_DYN_CONFIG_DIR:
		*text_r = cfg->config_dir;
		return 0;
	case PARAM_DYN_DOMAIN:
		if (expand_name(cfg, "myhostname", &host, depth + 1) < 0)
			return -1;
		dot = strchr(host, '.');
		free(cfg->computed);
		cfg->computed = xstrdup(dot != NULL && dot[1] != '\0' ? dot + 1 : "localdomain");
		*text_r = cfg->computed;
		return 0;
	default:
		*text_r = def->defval;
		return 0;
	}
}

const char *config_raw(struct config *cfg, const char *name)
{
	const struct config_entry *e = hash_get(cfg->entries, name);
	const struct param_def *def;
	const char *text;

	if (e != NULL && e->set)
		return e->value;
	def = param_find(name);
	if (def == NULL)
		return NULL;
	if (default_text(cfg, def, 0, &text) < 0)
		return def->defval; /* a loop: show the default as written */
	return text;
}

const char *config_where(struct config *cfg, const char *name)
{
	const struct config_entry *e = hash_get(cfg->entries, name);

	(void)cfg;
	return e != NULL && e->set ? e->where : "default";
}

static int compare_strings(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void config_set_names(const struct config *cfg, strv_t *names_r)
{
	size_t pos = 0;
	const char *name;
	void *value;

	while (hash_next(cfg->entries, &pos, &name, &value))
		if (((struct config_entry *)value)->set)
			strv_add(names_r, name);
	if (names_r->n > 1)
		qsort(names_r->v, names_r->n, sizeof(char *), compare_strings);
}

/* ---- expansion -------------------------------------------------------- */

static int set_error(struct config *cfg, const char **error_r, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static int set_error(struct config *cfg, const char **error_r, const char *fmt, ...)
{
	va_list ap;

	str_reset(&cfg->error);
	va_start(ap, fmt);
	str_vappendf(&cfg->error, fmt, ap);
	va_end(ap);
	*error_r = str_c(&cfg->error);
	return -1;
}

/* Find the bracket that closes the one before *p (open/close given),
 * honouring nesting; returns a pointer to it or NULL. */
static const char *matching_close(const char *p, char open, char close)
{
	int depth = 1;

	for (; *p != '\0'; p++) {
		if (*p == open)
			depth++;
		else if (*p == close && --depth == 0)
			return p;
	}
	return NULL;
}

static int expand_text_depth(struct config *cfg, const char *text, size_t len, str_t *out,
                             int depth);

/* ${name?text}, ${name:text}, ${name?{t1}:{t2}} and plain ${name}. */
static int expand_reference(struct config *cfg, const char *body, size_t len, str_t *out, int depth)
{
	size_t n = 0;
	char *name;
	const char *value;
	int ret;

	while (n < len && is_name_char(body[n]))
		n++;
	if (n == 0) {
		str_reset(&cfg->error);
		str_appendf(&cfg->error, "bad parameter reference \"${%.*s}\": expected a name",
		            (int)len, body);
		return -1;
	}
	name = xstrndup(body, n);
	ret = expand_name(cfg, name, &value, depth + 1);
	free(name);
	if (ret < 0)
		return -1;
	if (n == len) {
		str_append(out, value);
		return 0;
	}
	if (body[n] != '?' && body[n] != ':') {
		str_reset(&cfg->error);
		str_appendf(&cfg->error,
		            "bad parameter reference \"${%.*s}\": expected '}', '?' or ':' after "
		            "the name",
		            (int)len, body);
		return -1;
	}
	{
		bool nonempty = value[0] != '\0';
		const char *rest = body + n + 1;
		size_t rlen = len - n - 1;

		if (body[n] == '?' && rlen > 0 && rest[0] == '{') {
			/* ${name?{if-nonempty}} or ${name?{if-nonempty}:{if-empty}}:
			 * both parts are checked whichever one is used. */
			const char *end = rest + rlen, *close, *close2 = NULL;

			close = matching_close(rest + 1, '{', '}');
			if (close == NULL || close >= end)
				goto unmatched;
			if (close + 1 < end) {
				if (close + 2 >= end || close[1] != ':' || close[2] != '{')
					goto unmatched;
				close2 = matching_close(close + 3, '{', '}');
				if (close2 == NULL || close2 + 1 != end)
					goto unmatched;
			}
			if (nonempty)
				return expand_text_depth(cfg, rest + 1, (size_t)(close - rest - 1),
				                         out, depth + 1);
			if (close2 != NULL)
				return expand_text_depth(cfg, close + 3,
				                         (size_t)(close2 - close - 3), out,
				                         depth + 1);
			return 0;
		}
		if ((body[n] == '?') == nonempty)
			return expand_text_depth(cfg, rest, rlen, out, depth + 1);
		return 0;
	}
unmatched:
	str_reset(&cfg->error);
	str_appendf(&cfg->error, "unmatched '{' in \"${%.*s}\"", (int)len, body);
	return -1;
}

static int expand_text_depth(struct config *cfg, const char *text, size_t len, str_t *out,
                             int depth)
{
	size_t i = 0;

	if (depth > CONFIG_EXPAND_DEPTH) {
		str_reset(&cfg->error);
		str_appendf(&cfg->error, "expansion nested deeper than %d levels",
		            CONFIG_EXPAND_DEPTH);
		return -1;
	}
	while (i < len) {
		const char *dollar = memchr(text + i, '$', len - i);
		char c;

		if (dollar == NULL) {
			str_append_n(out, text + i, len - i);
			break;
		}
		str_append_n(out, text + i, (size_t)(dollar - text - i));
		i = (size_t)(dollar - text) + 1;
		c = i < len ? text[i] : '\0';
		if (c == '$') {
			str_append_c(out, '$');
			i++;
		} else if (c == '{' || c == '(') {
			char close = c == '{' ? '}' : ')';
			size_t j = i + 1;
			int nest = 1;

			for (; j < len; j++) {
				if (text[j] == c)
					nest++;
				else if (text[j] == close && --nest == 0)
					break;
			}
			if (j >= len) {
				str_reset(&cfg->error);
				str_appendf(&cfg->error, "unmatched '%c' in \"%.*s\"", c, (int)len,
				            text);
				return -1;
			}
			if (expand_reference(cfg, text + i + 1, j - i - 1, out, depth) < 0)
				return -1;
			i = j + 1;
		} else if (is_name_char(c)) {
			size_t j = i;
			char *name;
			const char *value;
			int ret;

			while (j < len && is_name_char(text[j]))
				j++;
			name = xstrndup(text + i, j - i);
			ret = expand_name(cfg, name, &value, depth + 1);
			free(name);
			if (ret < 0)
				return -1;
			str_append(out, value);
			i = j;
		} else {
			str_append_c(out, '$'); /* a lone '$' stays as written */
		}
	}
	return 0;
}

static int expand_name(struct config *cfg, const char *name, const char **value_r, int depth)
{
	struct config_entry *e;
	const struct param_def *def = param_find(name);
	const char *raw;
	str_t out;

	if (depth > 0) /* referenced from another value, not asked for directly */
		hash_put(cfg->referenced, name, NULL);
	e = hash_get(cfg->entries, name);
	if (e != NULL && e->expanded != NULL) {
		*value_r = e->expanded;
		return 0;
	}
	if ((e == NULL || !e->set) && def == NULL) {
		*value_r = ""; /* undefined: empty, as in Postfix */
		return 0;
	}
	e = entry_get(cfg, name);
	if (e->expanding) {
		str_reset(&cfg->error);
		str_appendf(&cfg->error, "expansion loop through $%s", name);
		return -1;
	}
	e->expanding = true;
	if (e->set) {
		raw = e->value;
	} else if (default_text(cfg, def, depth, &raw) < 0) {
		e->expanding = false;
		return -1;
	}
	raw = xstrdup(raw); /* default_text may reuse its buffer while we recurse */
	str_init(&out);
	if (expand_text_depth(cfg, raw, strlen(raw), &out, depth) < 0) {
		e->expanding = false;
		str_free(&out);
		free((char *)raw);
		return -1;
	}
	e->expanding = false;
	free((char *)raw);
	e->expanded = str_steal(&out);
	str_free(&out);
	*value_r = e->expanded;
	return 0;
}

int config_expand(struct config *cfg, const char *name, const char **value_r, const char **error_r)
{
	if (expand_name(cfg, name, value_r, 0) < 0) {
		char *why = xstrdup(str_c(&cfg->error));

		set_error(cfg, error_r, "%s: parameter %s: %s", config_where(cfg, name), name, why);
		free(why);
		return -1;
	}
	return 0;
}

int config_expand_dup(struct config *cfg, const char *name, char **value_r, str_t *error)
{
	const char *value, *err;

	if (config_expand(cfg, name, &value, &err) < 0) {
		str_append(error, err);
		return -1;
	}
	*value_r = xstrdup(value);
	return 0;
}

int config_expand_text(struct config *cfg, const char *text, str_t *out, const char **error_r)
{
	if (expand_text_depth(cfg, text, strlen(text), out, 0) < 0) {
		*error_r = str_c(&cfg->error);
		return -1;
	}
	return 0;
}

/* ---- typed access ----------------------------------------------------- */

static int bad_value(struct config *cfg, const char *name, const struct param_def *def,
                     const char *value, const char **error_r)
{
	char expect[160];

	return set_error(cfg, error_r, "%s: bad value for %s: \"%s\": expected %s",
	                 config_where(cfg, name), name, value,
	                 param_expectation(def, expect, sizeof(expect)));
}

/* Expand a known parameter of the given type(s). */
static int typed_value(struct config *cfg, const char *name, enum param_type type,
                       enum param_type alt, const struct param_def **def_r, const char **value_r,
                       const char **error_r)
{
	const struct param_def *def = param_find(name);

	if (def == NULL || (def->type != type && def->type != alt))
		log_panic("%s: %s is not a known parameter of the requested type", __func__, name);
	*def_r = def;
	return config_expand(cfg, name, value_r, error_r);
}

int config_get_bool(struct config *cfg, const char *name, bool *value_r, const char **error_r)
{
	const struct param_def *def;
	const char *value;

	if (typed_value(cfg, name, PARAM_BOOL, PARAM_BOOL, &def, &value, error_r) < 0)
		return -1;
	if (parse_bool(value, value_r) < 0)
		return bad_value(cfg, name, def, value, error_r);
	return 0;
}

int config_get_int(struct config *cfg, const char *name, int64_t *value_r, const char **error_r)
{
	const struct param_def *def;
	const char *value;

	if (typed_value(cfg, name, PARAM_INT, PARAM_SIZE, &def, &value, error_r) < 0)
		return -1;
	if (parse_int64(value, def->min, def->max, value_r) < 0)
		return bad_value(cfg, name, def, value, error_r);
	return 0;
}

int config_get_time(struct config *cfg, const char *name, uint64_t *seconds_r, const char **error_r)
{
	const struct param_def *def;
	const char *value;

	if (typed_value(cfg, name, PARAM_TIME, PARAM_TIME, &def, &value, error_r) < 0)
		return -1;
	if (parse_time(value, def->time_unit, (uint64_t)def->max, seconds_r) < 0)
		return bad_value(cfg, name, def, value, error_r);
	return 0;
}

/* A table reference is type:name with a type made of letters, digits,
 * '_' and '-' (Postfix also allows "proxy:mysql:..."). */
static bool looks_like_table(const char *s)
{
	const char *colon = strchr(s, ':');

	if (colon == NULL || colon == s || colon[1] == '\0')
		return false;
	for (const char *p = s; p < colon; p++)
		if (!is_name_char(*p) && *p != '-')
			return false;
	return true;
}

int config_get_list(struct config *cfg, const char *name, const strv_t **list_r,
                    const char **error_r)
{
	const struct param_def *def;
	const char *value, *why;
	struct config_entry *e;

	if (typed_value(cfg, name, PARAM_LIST, PARAM_TABLES, &def, &value, error_r) < 0)
		return -1;
	e = entry_get(cfg, name);
	if (e->list_valid) {
		*list_r = &e->list;
		return 0;
	}
	if (strv_split_list(&e->list, value, &why) < 0) {
		strv_free(&e->list);
		return set_error(cfg, error_r, "%s: bad value for %s: %s", config_where(cfg, name),
		                 name, why);
	}
	if (def->type == PARAM_TABLES) {
		for (size_t i = 0; i < e->list.n; i++) {
			if (!looks_like_table(e->list.v[i])) {
				char *bad = xstrdup(e->list.v[i]);

				strv_free(&e->list);
				set_error(cfg, error_r,
				          "%s: bad value for %s: \"%s\": expected a lookup table "
				          "as type:name",
				          config_where(cfg, name), name, bad);
				free(bad);
				return -1;
			}
		}
	}
	e->list_valid = true;
	*list_r = &e->list;
	return 0;
}

const char *config_str(struct config *cfg, const char *name)
{
	const char *value, *error;

	if (config_expand(cfg, name, &value, &error) < 0)
		log_fatal("%s", error);
	return value;
}

bool config_bool(struct config *cfg, const char *name)
{
	const char *error;
	bool value;

	if (config_get_bool(cfg, name, &value, &error) < 0)
		log_fatal("%s", error);
	return value;
}

int64_t config_int(struct config *cfg, const char *name)
{
	const char *error;
	int64_t value;

	if (config_get_int(cfg, name, &value, &error) < 0)
		log_fatal("%s", error);
	return value;
}

uint64_t config_time(struct config *cfg, const char *name)
{
	const char *error;
	uint64_t value;

	if (config_get_time(cfg, name, &value, &error) < 0)
		log_fatal("%s", error);
	return value;
}

const strv_t *config_list(struct config *cfg, const char *name)
{
	const char *error;
	const strv_t *value;

	if (config_get_list(cfg, name, &value, &error) < 0)
		log_fatal("%s", error);
	return value;
}

/* ---- validation ------------------------------------------------------- */

/* Text parameters whose value is one word of a fixed set (any case):
 * checked at every load and by `postern check`, not only by the daemon
 * that acts on them. */
static const struct {
	const char *name;
	const char *words[5];
	const char *expect;
} word_params[] = {
        {"smtpd_forbid_bare_newline",
         {"no", "yes", "normalize", "reject", NULL},
         "no, yes, normalize or reject"},
};

static int check_words(struct config *cfg, const char *name, const char *value,
                       const char **error_r)
{
	for (size_t i = 0; i < sizeof(word_params) / sizeof(word_params[0]); i++) {
		if (strcmp(word_params[i].name, name) != 0)
			continue;
		for (const char *const *w = word_params[i].words; *w != NULL; w++)
			if (strcasecmp(*w, value) == 0)
				return 0;
		return set_error(cfg, error_r, "%s: %s: \"%s\": expected %s",
		                 config_where(cfg, name), name, value, word_params[i].expect);
	}
	return 0;
}

static int check_typed(struct config *cfg, const char *name, const struct param_def *def,
                       const char **error_r)
{
	bool b;
	int64_t i;
	uint64_t t;
	const strv_t *l;
	const char *s;

	switch (def->type) {
	case PARAM_BOOL:
		return config_get_bool(cfg, name, &b, error_r);
	case PARAM_INT:
	case PARAM_SIZE:
		return config_get_int(cfg, name, &i, error_r);
	case PARAM_TIME:
		return config_get_time(cfg, name, &t, error_r);
	case PARAM_LIST:
	case PARAM_TABLES:
		return config_get_list(cfg, name, &l, error_r);
	default:
		if (config_expand(cfg, name, &s, error_r) < 0)
			return -1;
		return check_words(cfg, name, s, error_r);
	}
}

int config_check_value(struct config *cfg, const char *name, const char **error_r)
{
	const struct param_def *def = param_find(name);

	return def != NULL ? check_typed(cfg, name, def, error_r) : 0;
}

void config_note_references(struct config *cfg, const char *text)
{
	str_t scratch;

	str_init(&scratch);
	(void)expand_text_depth(cfg, text, strlen(text), &scratch, 0);
	str_free(&scratch);
}

/* Values that are each fine but wrong together. Postfix's virtual(8)
 * refuses to start when virtual_mailbox_limit is below
 * message_size_limit: a message smtpd accepts could never be stored. */
static int check_combinations(struct config *cfg, strv_t *errors)
{
	int64_t mailbox, message;
	const char *why;

	if (config_get_int(cfg, "virtual_mailbox_limit", &mailbox, &why) < 0 ||
	    config_get_int(cfg, "message_size_limit", &message, &why) < 0)
		return 0; /* reported with the value itself */
	if (mailbox == 0 || message == 0 || mailbox >= message)
		return 0;
	strv_add_owned(errors,
	               xasprintf("%s: virtual_mailbox_limit (%lld) is smaller than "
	                         "message_size_limit (%lld, %s): a message that is accepted could "
	                         "never be delivered",
	                         config_where(cfg, "virtual_mailbox_limit"), (long long)mailbox,
	                         (long long)message, config_where(cfg, "message_size_limit")));
	return 1;
}

int config_validate(struct config *cfg, const strv_t *service_names, strv_t *errors,
                    strv_t *warnings)
{
	strv_t names = STRV_INIT;
	int nerrors = 0;

	config_set_names(cfg, &names);
	/* First expand everything, which records every $name referenced. */
	for (size_t i = 0; i < names.n; i++) {
		const struct param_def *def = param_find(names.v[i]);
		const char *error, *value;
		int ret = def != NULL ? check_typed(cfg, names.v[i], def, &error)
		                      : config_expand(cfg, names.v[i], &value, &error);

		if (ret < 0) {
			strv_add(errors, error);
			nerrors++;
		}
	}
	if (nerrors == 0)
		nerrors += check_combinations(cfg, errors);
	for (size_t i = 0; i < names.n; i++) {
		const char *name = names.v[i];
		size_t plen;
		bool transport_param = false;

		if (param_find(name) != NULL || hash_contains(cfg->referenced, name))
			continue;
		if (service_names != NULL && param_transport_suffix(name, &plen)) {
			for (size_t j = 0; j < service_names->n; j++)
				if (strlen(service_names->v[j]) == plen &&
				    strncmp(service_names->v[j], name, plen) == 0)
					transport_param = true;
		}
		if (!transport_param)
			strv_add_owned(warnings, xasprintf("%s: unknown parameter: %s=%s",
			                                   config_where(cfg, name), name,
			                                   config_raw(cfg, name)));
	}
	strv_free(&names);
	return nerrors;
}

/* ---- parameters accepted but not implemented yet -------------------- */

static bool same_value(const struct param_def *def, const char *a, const char *b)
{
	bool ba, bb;
	int64_t ia, ib;
	uint64_t ta, tb;
	strv_t la = STRV_INIT, lb = STRV_INIT;
	const char *why;

	switch (def->type) {
	case PARAM_BOOL:
		if (parse_bool(a, &ba) == 0 && parse_bool(b, &bb) == 0)
			return ba == bb;
		break;
	case PARAM_INT:
	case PARAM_SIZE:
		if (parse_int64(a, INT64_MIN, INT64_MAX, &ia) == 0 &&
		    parse_int64(b, INT64_MIN, INT64_MAX, &ib) == 0)
			return ia == ib;
		break;
	case PARAM_TIME:
		if (parse_time(a, def->time_unit, UINT64_MAX, &ta) == 0 &&
		    parse_time(b, def->time_unit, UINT64_MAX, &tb) == 0)
			return ta == tb;
		break;
	case PARAM_LIST:
	case PARAM_TABLES:
		if (strv_split_list(&la, a, &why) == 0 && strv_split_list(&lb, b, &why) == 0) {
			bool same = la.n == lb.n;

			for (size_t i = 0; same && i < la.n; i++)
				same = strcmp(la.v[i], lb.v[i]) == 0;
			strv_free(&la);
			strv_free(&lb);
			return same;
		}
		strv_free(&la);
		strv_free(&lb);
		break;
	default:
		break;
	}
	return strcmp(a, b) == 0;
}

bool config_not_yet_set(struct config *cfg, const char *name)
{
	const struct param_def *def = param_find(name);
	const char *value, *error;
	char *copy;
	str_t dflt;
	bool differs;

	if (!param_not_yet(def) || !config_is_set(cfg, name))
		return false;
	/* A value that does not expand is set to something: say so too. */
	if (config_expand(cfg, name, &value, &error) < 0)
		return true;
	copy = xstrdup(value);
	str_init(&dflt);
	differs = config_expand_text(cfg, def->defval, &dflt, &error) < 0 ||
	          !same_value(def, copy, str_c(&dflt));
	str_free(&dflt);
	free(copy);
	return differs;
}

void config_not_yet_warnings(struct config *cfg, strv_t *warnings)
{
	strv_t names = STRV_INIT;

	config_set_names(cfg, &names);
	for (size_t i = 0; i < names.n; i++)
		if (config_not_yet_set(cfg, names.v[i]))
			strv_add_owned(warnings,
			               xasprintf("%s: %s is accepted but not implemented yet",
			                         config_where(cfg, names.v[i]), names.v[i]));
	strv_free(&names);
}
