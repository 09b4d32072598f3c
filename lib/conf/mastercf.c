/* mastercf.c - master.cf parsing (see mastercf.h).
 *
 * Used by the master process to know which services to run, and by
 * `postern check` and `postern conf -M`. Parsing never stops at the first
 * bad line: each bad logical line gives one message naming the file, the
 * line where the service starts and what was expected, and is left out of
 * the result; the good lines are still returned so every problem can be
 * shown at once. Nothing is logged here; the caller decides what an error
 * means (fatal for master, a listed problem for `postern check`).
 */
#include "conf/mastercf.h"

#include <arpa/inet.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/fs.h"
#include "base/hash.h"
#include "base/mem.h"
#include "base/parse.h"
#include "base/str.h"
#include "conf/config.h"

/* The fields before the arguments, in order; used in messages. */
static const char *const field_names[] = {
        "service", "type", "private", "unpriv", "chroot", "wakeup", "maxproc", "command",
};
#define FIELD_COUNT (sizeof(field_names) / sizeof(field_names[0]))

static const struct {
	const char *name;
	enum master_type id;
} service_types[] = {
        {"inet", MASTER_TYPE_INET},
        {"unix", MASTER_TYPE_UNIX},
        {"unix-dgram", MASTER_TYPE_UNIX_DGRAM},
        {"fifo", MASTER_TYPE_FIFO},
        {"pass", MASTER_TYPE_PASS},
};

/* Options of Postfix's daemon skeletons that take a value as the next
 * argument ("-n name", "-t type", ...): the value is not the first
 * non-option argument, so option scanning goes on after it. */
#define OPTIONS_WITH_VALUE "imnst"

/* Where the logical line being parsed comes from. */
struct line_ctx {
	const char *filename;
	unsigned line;
	strv_t *errors;
};

static void line_error(const struct line_ctx *ctx, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

static void line_error(const struct line_ctx *ctx, const char *fmt, ...)
{
	str_t msg;
	va_list ap;

	str_init(&msg);
	str_appendf(&msg, "%s, line %u: ", ctx->filename, ctx->line);
	va_start(ap, fmt);
	str_vappendf(&msg, fmt, ap);
	va_end(ap);
	strv_add_owned(ctx->errors, str_steal(&msg));
	str_free(&msg);
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

/* A parameter name of "-o name=value": as in main.cf, '-' and '.' too
 * (per-service names such as smtp-amavis_destination_recipient_limit). */
static bool is_param_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-' || c == '.';
}

/* ---- tokens --------------------------------------------------------------- */

/* The next white-space separated token at *pp, or false at the end of the
 * line. With braces, "{...}" groups (nested) may hold white space inside
 * one token, as Postfix's mystrtokq() does; *unbalanced_r tells that a
 * '{' was still open at the end of the line. A '}' without a '{' is data,
 * as in Postfix. */
static bool next_token(const char **pp, bool braces, const char **start_r, size_t *len_r,
                       bool *unbalanced_r)
{
	const char *p = *pp;
	size_t level = 0;

	while (is_space(*p))
		p++;
	if (*p == '\0') {
		*pp = p;
		return false;
	}
	*start_r = p;
	for (; *p != '\0'; p++) {
		if (braces && *p == '{')
			level++;
		else if (braces && *p == '}' && level > 0)
			level--;
		else if (level == 0 && is_space(*p))
			break;
	}
	*len_r = (size_t)(p - *start_r);
	*unbalanced_r = level > 0;
	*pp = p;
	return true;
}

/* A copy of one argument; "{ text }" loses its braces and the white space
 * just inside them (Postfix's extpar()). Returns NULL, or a static message
 * when text follows the closing brace. The token's braces are balanced
 * (next_token checked). */
static const char *unbrace(const char *tok, size_t len, char **out_r)
{
	size_t level = 0, close, start = 1, end;

	if (len == 0 || tok[0] != '{') {
		*out_r = xstrndup(tok, len);
		return NULL;
	}
	for (close = 0; close < len; close++) {
		if (tok[close] == '{')
			level++;
		else if (tok[close] == '}' && --level == 0)
			break;
	}
	if (close + 1 != len)
		return "text after '}'";
	end = close;
	while (start < end && is_space(tok[start]))
		start++;
	while (end > start && is_space(tok[end - 1]))
		end--;
	*out_r = xstrndup(tok + start, end - start);
	return NULL;
}

/* ---- fields --------------------------------------------------------------- */

static void service_free(struct master_service *s)
{
	free(s->name);
	free(s->type);
	free(s->host);
	free(s->port);
	free(s->command);
	strv_free(&s->argv);
	strv_free(&s->override_names);
	strv_free(&s->override_values);
	free(s->file);
	memset(s, 0, sizeof(*s));
}

/* y, n or - (def). */
static int parse_flag(const struct line_ctx *ctx, const char *field, const char *value, bool def,
                      bool *flag_r)
{
	if (strcmp(value, "-") == 0)
		*flag_r = def;
	else if (strcmp(value, "y") == 0)
		*flag_r = true;
	else if (strcmp(value, "n") == 0)
		*flag_r = false;
	else {
		line_error(ctx, "field \"%s\": expected y, n or -, got \"%s\"", field, value);
		return -1;
	}
	return 0;
}

static bool valid_host_name(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '-' || c == '_'))
			return false;
	}
	return len > 0;
}

static bool valid_port(const char *port)
{
	uint64_t number;
	bool letter = false;

	if (parse_uint64(port, 1, 65535, &number) == 0)
		return true;
	/* A service name from /etc/services: letters, digits, '-', '_',
	 * and not all digits (that would be a bad number). */
	for (const char *p = port; *p != '\0'; p++) {
		char c = *p;

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
			letter = true;
		else if (!((c >= '0' && c <= '9') || c == '-' || c == '_'))
			return false;
	}
	return letter;
}

/* "port", "host:port", "[ipv4]:port", "[ipv6]:port". Returns NULL, or a
 * static message saying what is wrong. */
static const char *parse_inet_name(const char *name, char **host_r, char **port_r)
{
	const char *port;
	char *host = NULL;

	if (name[0] == '[') {
		const char *close = strchr(name, ']');
		unsigned char addr[16];

		if (close == NULL)
			return "missing ']'";
		if (close == name + 1)
			return "empty address inside []";
		if (close[1] != ':')
			return "expected ':' and a port after ']'";
		host = xstrndup(name + 1, (size_t)(close - name - 1));
		if (inet_pton(AF_INET6, host, addr) != 1 && inet_pton(AF_INET, host, addr) != 1) {
			free(host);
			return "expected an IPv4 or IPv6 address inside []";
		}
		port = close + 2;
	} else {
		const char *colon = strrchr(name, ':');

		if (strpbrk(name, "[]") != NULL) {
			return "misplaced '[' or ']'";
		} else if (colon == NULL) {
			port = name;
		} else if (colon == name) {
			return "empty host before ':'";
		} else if (memchr(name, ':', (size_t)(colon - name)) != NULL) {
			return "an IPv6 address must be written in brackets, as in [::1]:25";
		} else if (!valid_host_name(name, (size_t)(colon - name))) {
			return "bad host name";
		} else {
			host = xstrndup(name, (size_t)(colon - name));
			port = colon + 1;
		}
	}
	if (*port == '\0') {
		free(host);
		return "empty port";
	}
	if (!valid_port(port)) {
		free(host);
		return "expected a port number from 1 to 65535 or a service name";
	}
	*host_r = host;
	*port_r = xstrdup(port);
	return NULL;
}

/* The text after -o: "name=value" or "{ name = value }". */
static int add_override(struct master_service *svc, const struct line_ctx *ctx, const char *tok,
                        size_t len)
{
	char *text, *eq, *name_end, *value;
	const char *why = unbrace(tok, len, &text);
	bool braced = len > 0 && tok[0] == '{';

	if (why != NULL) {
		line_error(ctx, "\"-o %.*s\": %s", (int)len, tok, why);
		return -1;
	}
	eq = strchr(text, '=');
	if (eq == NULL) {
		line_error(ctx, "\"-o %s\": expected -o name=value", text);
		free(text);
		return -1;
	}
	name_end = eq;
	value = eq + 1;
	if (braced) {
		/* Postfix 3.0: white space around '=' is not part of the
		 * name or the value. */
		while (name_end > text && is_space(name_end[-1]))
			name_end--;
		while (is_space(*value))
			value++;
	}
	if (name_end == text) {
		line_error(ctx, "\"-o %s\": missing parameter name before '='", text);
		free(text);
		return -1;
	}
	for (const char *p = text; p < name_end; p++) {
		if (!is_param_char(*p)) {
			line_error(ctx,
			           "\"-o %s\": bad parameter name \"%.*s\": expected letters, "
			           "digits, '_', '-' and '.'",
			           text, (int)(name_end - text), text);
			free(text);
			return -1;
		}
	}
	strv_add_n(&svc->override_names, text, (size_t)(name_end - text));
	strv_add(&svc->override_values, value);
	free(text);
	return 0;
}

/* The next token as an argument; false at the end of the line, -1 in
 * *ret_r after an error. */
static bool next_arg(const char **pp, const struct line_ctx *ctx, const char **tok_r, size_t *len_r,
                     int *ret_r)
{
	bool unbalanced;

	if (!next_token(pp, true, tok_r, len_r, &unbalanced))
		return false;
	if (unbalanced) {
		line_error(ctx, "missing '}' in \"%.*s\"", (int)*len_r, *tok_r);
		*ret_r = -1;
	}
	return true;
}

static int add_arg(struct master_service *svc, const struct line_ctx *ctx, const char *tok,
                   size_t len)
{
	char *arg;
	const char *why = unbrace(tok, len, &arg);

	if (why != NULL) {
		line_error(ctx, "\"%.*s\": %s", (int)len, tok, why);
		return -1;
	}
	strv_add_owned(&svc->argv, arg);
	return 0;
}

/* The arguments after the command: overrides and argv (see the header
 * for why option scanning stops at the first non-option). */
static int parse_args(struct master_service *svc, const struct line_ctx *ctx, const char *p)
{
	bool options = true;
	const char *tok;
	size_t len;
	int ret = 0;

	while (ret == 0 && next_arg(&p, ctx, &tok, &len, &ret)) {
		if (ret < 0)
			break;
		if (!options || tok[0] != '-' || len < 2) {
			options = false;
			ret = add_arg(svc, ctx, tok, len);
		} else if (len == 2 && tok[1] == '-') {
			options = false;
			strv_add(&svc->argv, "--");
		} else if (tok[1] == 'o' && len > 2) {
			ret = add_override(svc, ctx, tok + 2, len - 2);
		} else if (tok[1] == 'o') {
			if (!next_arg(&p, ctx, &tok, &len, &ret)) {
				line_error(ctx, "\"-o\" without a value: expected -o name=value");
				ret = -1;
			} else if (ret == 0) {
				ret = add_override(svc, ctx, tok, len);
			}
		} else {
			strv_add_n(&svc->argv, tok, len);
			if (len == 2 && strchr(OPTIONS_WITH_VALUE, tok[1]) != NULL &&
			    next_arg(&p, ctx, &tok, &len, &ret) && ret == 0)
				ret = add_arg(svc, ctx, tok, len);
		}
	}
	return ret;
}

/* The eight fields of a service line into svc. */
static int parse_fields(struct master_service *svc, const struct line_ctx *ctx, char **fields)
{
	size_t t;
	uint64_t number;

	svc->name = xstrdup(fields[0]);
	svc->type = xstrdup(fields[1]);
	for (t = 0; t < sizeof(service_types) / sizeof(service_types[0]); t++)
		if (strcmp(fields[1], service_types[t].name) == 0)
			break;
	if (t == sizeof(service_types) / sizeof(service_types[0])) {
		line_error(ctx,
		           "field \"type\": expected inet, unix, unix-dgram, fifo or pass, "
		           "got \"%s\"",
		           fields[1]);
		return -1;
	}
	svc->type_id = service_types[t].id;
	if (svc->type_id == MASTER_TYPE_INET) {
		const char *why = parse_inet_name(fields[0], &svc->host, &svc->port);

		if (why != NULL) {
			line_error(ctx,
			           "field \"service\": bad inet service \"%s\": %s; expected port, "
			           "host:port, [ipv4]:port or [ipv6]:port",
			           fields[0], why);
			return -1;
		}
		/* Postfix: "inet service cannot be private"; "-" means public. */
		if (strcmp(fields[2], "y") == 0) {
			line_error(ctx, "field \"private\": an inet service cannot be private, "
			                "expected n or -, got \"y\"");
			return -1;
		}
		if (parse_flag(ctx, field_names[2], fields[2], false, &svc->private_) < 0)
			return -1;
	} else if (parse_flag(ctx, field_names[2], fields[2], true, &svc->private_) < 0) {
		return -1;
	}
	if (parse_flag(ctx, field_names[3], fields[3], true, &svc->unpriv) < 0 ||
	    parse_flag(ctx, field_names[4], fields[4], false, &svc->chroot) < 0)
		return -1;

	if (strcmp(fields[5], "-") != 0) {
		size_t len = strlen(fields[5]);
		bool conditional = len > 1 && fields[5][len - 1] == '?';

		if (conditional)
			fields[5][len - 1] = '\0';
		if (parse_uint64(fields[5], 0, INT_MAX, &number) < 0) {
			if (conditional)
				fields[5][len - 1] = '?';
			line_error(ctx,
			           "field \"wakeup\": expected a number of seconds from 0 to %d, "
			           "optionally followed by '?', or -, got \"%s\"",
			           INT_MAX, fields[5]);
			return -1;
		}
		svc->wakeup = (unsigned)number;
		/* As in Postfix, '?' only matters for a wakeup that happens. */
		svc->wakeup_conditional = conditional && number > 0;
	}

	if (strcmp(fields[6], "-") == 0) {
		svc->maxproc = -1;
	} else if (parse_uint64(fields[6], 0, INT_MAX, &number) < 0) {
		line_error(ctx,
		           "field \"maxproc\": expected a number from 0 (no limit) to %d, or - "
		           "for default_process_limit, got \"%s\"",
		           INT_MAX, fields[6]);
		return -1;
	} else {
		svc->maxproc = (long)number;
	}

	if (strcmp(fields[7], "-") == 0) {
		line_error(ctx, "field \"command\": expected a program name, got \"-\"");
		return -1;
	}
	svc->command = xstrdup(fields[7]);
	return 0;
}

/* ---- the file ------------------------------------------------------------- */

struct parse_state {
	struct master_conf *conf;
	size_t cap;
	hash_t *seen; /* "name type" -> first line (as a pointer-sized number) */
	const char *filename;
	strv_t *errors;
};

/* One logical line (continuations joined, no NUL byte) that starts at
 * line `line`. */
static void parse_service(struct parse_state *st, const char *text, unsigned line)
{
	struct line_ctx ctx = {.filename = st->filename, .line = line, .errors = st->errors};
	struct master_service svc = {.maxproc = -1};
	char *fields[FIELD_COUNT] = {NULL};
	const char *p = text, *tok;
	size_t len, i;
	bool unbalanced;
	char *key;
	void *first;

	for (i = 0; i < FIELD_COUNT; i++) {
		if (!next_token(&p, false, &tok, &len, &unbalanced)) {
			line_error(&ctx,
			           "missing field \"%s\": expected service type private unpriv "
			           "chroot wakeup maxproc command [args]",
			           field_names[i]);
			goto fail;
		}
		fields[i] = xstrndup(tok, len);
	}
	if (parse_fields(&svc, &ctx, fields) < 0 || parse_args(&svc, &ctx, p) < 0)
		goto fail;

	key = xasprintf("%s %s", svc.name, svc.type);
	first = hash_get(st->seen, key);
	if (first != NULL) {
		line_error(&ctx,
		           "duplicate service \"%s\" of type \"%s\": first defined at line %u",
		           svc.name, svc.type, (unsigned)(uintptr_t)first);
		free(key);
		goto fail;
	}
	hash_put(st->seen, key, (void *)(uintptr_t)line);
	free(key);

	svc.file = xstrdup(st->filename);
	svc.line = line;
	if (st->conf->n == st->cap) {
		st->cap = st->cap != 0 ? st->cap * 2 : 16;
		st->conf->services =
		        xreallocarray(st->conf->services, st->cap, sizeof(*st->conf->services));
	}
	st->conf->services[st->conf->n++] = svc;
	for (i = 0; i < FIELD_COUNT; i++)
		free(fields[i]);
	return;

fail:
	service_free(&svc);
	for (i = 0; i < FIELD_COUNT; i++)
		free(fields[i]);
}

/* The logical line being collected. */
struct entry {
	str_t text;
	unsigned line; /* where it starts; 0 = none */
	bool bad; /* already reported; skip it and its continuations */
};

static void entry_finish(struct parse_state *st, struct entry *e)
{
	if (e->line != 0 && !e->bad)
		parse_service(st, str_c(&e->text), e->line);
	str_reset(&e->text);
	e->line = 0;
	e->bad = false;
}

/* Append one physical line's content to the entry, within the limit. */
static void entry_append(struct parse_state *st, struct entry *e, const char *data, size_t len)
{
	size_t extra = len + (e->text.len > 0);

	if (e->bad)
		return;
	if (e->text.len + extra > MASTERCF_LINE_MAX) {
		strv_add_owned(
		        st->errors,
		        xasprintf("%s, line %u: service entry longer than %d bytes (with its "
		                  "continuation lines)",
		                  st->filename, e->line, MASTERCF_LINE_MAX));
		e->bad = true;
		return;
	}
	if (e->text.len > 0)
		str_append_c(&e->text, ' ');
	str_append_n(&e->text, data, len);
}

int mastercf_parse_text(const char *text, size_t len, const char *filename,
                        struct master_conf **conf_r, strv_t *errors)
{
	struct parse_state st = {
	        .conf = xcalloc(1, sizeof(struct master_conf)),
	        .seen = hash_new(NULL),
	        .filename = filename,
	        .errors = errors,
	};
	struct entry e = {.line = 0};
	size_t nerrors = errors->n, pos = 0;
	unsigned lineno = 0;

	str_init(&e.text);
	while (pos < len) {
		const char *line = text + pos;
		const char *nl = memchr(line, '\n', len - pos);
		size_t llen = nl != NULL ? (size_t)(nl - line) : len - pos;
		size_t i = 0;
		bool nul = memchr(line, '\0', llen) != NULL;

		pos += llen + (nl != NULL);
		lineno++;
		if (llen > 0 && line[llen - 1] == '\r')
			llen--;
		while (i < llen && is_space(line[i]))
			i++;
		if (nul) {
			/* A NUL byte is never valid text; the service it is
			 * part of is dropped as a whole rather than parsed
			 * with a piece missing. */
			strv_add_owned(errors, xasprintf("%s, line %u: NUL byte in line", filename,
			                                 lineno));
			if (i == 0) {
				entry_finish(&st, &e);
				e.line = lineno;
			}
			e.bad = e.line != 0;
			continue;
		}
		if (i == llen || line[i] == '#')
			continue; /* blank or comment, also between continuation lines */
		if (i == 0) {
			entry_finish(&st, &e);
			e.line = lineno;
		} else if (e.line == 0) {
			strv_add_owned(
			        errors,
			        xasprintf("%s, line %u: continuation line (it starts with white "
			                  "space) without a service line before it",
			                  filename, lineno));
			continue;
		}
		entry_append(&st, &e, line + i, llen - i);
	}
	entry_finish(&st, &e);
	str_free(&e.text);
	hash_destroy(&st.seen);
	*conf_r = st.conf;
	return errors->n > nerrors ? -1 : 0;
}

int mastercf_load(const char *path, struct master_conf **conf_r, strv_t *errors)
{
	str_t text, error;
	int ret;

	str_init(&text);
	str_init(&error);
	if (fs_read_file(path, MASTERCF_FILE_MAX, &text, &error) < 0) {
		strv_add(errors, str_c(&error));
		*conf_r = xcalloc(1, sizeof(**conf_r));
		ret = -1;
	} else {
		ret = mastercf_parse_text(text.buf, text.len, path, conf_r, errors);
	}
	str_free(&text);
	str_free(&error);
	return ret;
}

const struct master_service *mastercf_find(const struct master_conf *conf, const char *name,
                                           const char *type)
{
	for (size_t i = 0; i < conf->n; i++) {
		const struct master_service *s = &conf->services[i];

		if (strcmp(s->name, name) == 0 && (type == NULL || strcmp(s->type, type) == 0))
			return s;
	}
	return NULL;
}

long mastercf_process_limit(const struct master_service *service, long default_process_limit)
{
	return service->maxproc < 0 ? default_process_limit : service->maxproc;
}

void mastercf_destroy(struct master_conf **confp)
{
	struct master_conf *conf = *confp;

	if (conf == NULL)
		return;
	for (size_t i = 0; i < conf->n; i++)
		service_free(&conf->services[i]);
	free(conf->services);
	free(conf);
	*confp = NULL;
}

struct config *mastercf_service_config(const struct config *main_cfg,
                                       const struct master_service *service)
{
	struct config *cfg = config_clone(main_cfg);

	for (size_t i = 0; i < service->override_names.n; i++) {
		char *origin = xasprintf("%s, line %u (service %s/%s)", service->file,
		                         service->line, service->name, service->type);

		config_set(cfg, service->override_names.v[i], service->override_values.v[i],
		           origin);
		free(origin);
	}
	return cfg;
}

void mastercf_not_yet_warnings(const struct config *main_cfg, const struct master_conf *mc,
                               strv_t *warnings)
{
	for (size_t i = 0; mc != NULL && i < mc->n; i++) {
		const struct master_service *s = &mc->services[i];
		struct config *svc;

		if (s->override_names.n == 0)
			continue;
		svc = mastercf_service_config(main_cfg, s);
		for (size_t o = 0; o < s->override_names.n; o++) {
			const char *name = s->override_names.v[o];
			bool seen = false;

			for (size_t p = 0; p < o; p++)
				seen = seen || strcmp(s->override_names.v[p], name) == 0;
			if (!seen && config_not_yet_set(svc, name))
				strv_add_owned(
				        warnings,
				        xasprintf("%s: %s is accepted but not implemented yet",
				                  config_where(svc, name), name));
		}
		config_destroy(&svc);
	}
}
