/* local_deliver.c - one recipient of the local delivery agent, in
 * Postfix local(8)'s order (recipient.c, alias.c, dot_forward.c,
 * mailbox.c, unknown.c):
 *
 *   1. loop checks: nesting deeper than LOCAL_LEVEL_MAX, an address
 *      already delivered in this recipient's expansion (dropped
 *      quietly), an address named by a Delivered-To: header of the
 *      message ("mail forwarding loop for ADDR", 5.4.6);
 *   2. alias_maps: the whole local part, then without its extension
 *      (propagate_unmatched_extensions "alias" puts the extension on the
 *      targets); an owner-NAME alias makes owner-NAME@$myorigin the
 *      envelope sender of what the alias forwards; destinations
 *      (alias_list.h): addresses (local ones delivered here, recursively;
 *      others re-submitted through cleanup, local_forward.c), |command
 *      and /file/name (allow_mail_to_commands / allow_mail_to_files) and
 *      :include:/file;
 *   3. a local address reached through an owner (an owner- alias or a
 *      .forward) that is not the owner itself, or named by an :include:
 *      file, is re-submitted as new mail, as Postfix does (each then
 *      gets its own queue record, and Delivered-To: breaks loops);
 *   4. the UNIX account (getpwnam_r; its home must be reachable as the
 *      user), forward_path (.forward files, read as the user);
 *   5. the mailbox: mailbox_transport, mailbox_command, home_mailbox
 *      (Maildir/ through lib/delivery/maildir.c, else an mbox file),
 *      else mail_spool_directory/USER (mbox);
 *   6. no account: fallback_transport, luser_relay, postmaster and
 *      MAILER-DAEMON discarded with a warning (a required alias is
 *      missing), else 5.1.1 unknown user: "USER".
 *
 * Failure: a table or file that cannot be read now, a full disk or a
 * command's EX_TEMPFAIL is a deferral (4.x.x); a lookup that did not
 * answer never makes a user unknown.
 *
 * SECURITY: every file is opened and every command started as the
 * identity the destination belongs to (local_become): the recipient for
 * its mailbox and .forward, the owner of a non-root alias table or
 * include file, else default_privs (also for root's own mailbox). Values
 * from the envelope reach paths and commands only through
 * forward_expansion_filter (local_expand.h); commands get the address in
 * their environment, never on a command line the agent builds.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fs.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/strv.h"
#include "delivery/alias_list.h"
#include "delivery/delivery.h"
#include "delivery/local_expand.h"
#include "delivery/maildir.h"
#include "delivery/mbox.h"
#include "delivery/resolve.h"
#include "local.h"
#include "table/maps.h"
#include "table/table.h"

#define LOCAL_LEVEL_MAX 100 /* Postfix's recursion limit */
#define LOCAL_ITEMS_MAX 1000 /* destinations in one alias value or file */
#define LOCAL_FILE_MAX (1024 * 1024) /* .forward and :include: files */

/* What one step of the expansion carries (Postfix's msg_attr and
 * usr_attr). Passed by value: a recursion changes its own copy. */
struct state {
	struct local_agent *la;
	struct local_message *msg;
	struct local_outcome *out;
	const char *orig; /* the queue file's recipient (orig_to=) */
	const char *rcpt; /* the address being delivered (to=) */
	const char *delivered; /* Delivered-To: (frozen at the top) */
	const char *sender; /* envelope sender of re-submitted mail */
	const char *owner; /* owner- alias or .forward owner: user name */
	const char *exp_from; /* the alias being expanded */
	enum local_class exp_type;
	struct local_ids ids; /* rights for |command and /file */
	const char *home; /* the rights' home, for command_execution_directory */
	const char *unmatched; /* extension to propagate */
	int level;
};

/* The parts of an address (Postfix's local, user, extension, domain). */
struct parts {
	char *local; /* lower case */
	char *user;
	char *extension; /* NULL when none */
	char *domain;
	char delim[2];
};

static void parts_free(struct parts *p)
{
	free(p->local);
	free(p->user);
	free(p->extension);
	free(p->domain);
}

static char *lower_dup(const char *s)
{
	char *d = xstrdup(s);

	for (char *p = d; *p != '\0'; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	return d;
}

static void split_parts(const struct local_agent *la, const char *addr, struct parts *p)
{
	const char *at = strrchr(addr, '@');
	size_t cut;

	memset(p, 0, sizeof(*p));
	p->local = at != NULL ? xstrndup(addr, (size_t)(at - addr)) : xstrdup(addr);
	for (char *c = p->local; *c != '\0'; c++)
		if (*c >= 'A' && *c <= 'Z')
			*c = (char)(*c - 'A' + 'a');
	p->domain = lower_dup(at != NULL ? at + 1 : "");
	cut = maps_extension_split(p->local, strlen(p->local), la->delimiters);
	p->user = xstrndup(p->local, cut);
	p->delim[0] = la->delimiters[0];
	if (p->local[cut] != '\0') {
		p->delim[0] = p->local[cut];
		/* Postfix drops an extension with a '/': it could reach a path. */
		if (strchr(p->local + cut + 1, '/') == NULL)
			p->extension = xstrdup(p->local + cut + 1);
		else
			p->local[cut] = '\0';
	}
}

/* Record a part without logging it (the other agent of a hand-over
 * logged it). */
static void record(struct local_outcome *out, enum local_status st, const char *dsn,
                   const char *reason)
{
	if (!out->any || st > out->status) {
		out->status = st;
		snprintf(out->dsn, sizeof(out->dsn), "%s", dsn);
		str_set(&out->reason, reason);
	}
	out->any = true;
}

#define PART(st, s, dsn, ...) \
	local_part((st)->la, (st)->msg, (st)->out, (st)->rcpt, (st)->orig, (s), (dsn), __VA_ARGS__)

static enum local_status status_of(const char *dsn)
{
	return dsn[0] == '2' ? LOCAL_SENT : dsn[0] == '5' ? LOCAL_BOUNCED : LOCAL_DEFERRED;
}

/* Been here before in this recipient's expansion? Marks it when not. */
static bool seen(struct state *st, const char *kind, const char *key)
{
	char *k = xasprintf("%s:%s", kind, key);

	if (strv_find(&st->out->done, k) >= 0) {
		free(k);
		return true;
	}
	strv_add_owned(&st->out->done, k);
	return false;
}

/* A passwd entry by name: 1 found, 0 none, -1 error (errno). */
static int user_lookup(const char *name, struct passwd *pw, char **buf_r)
{
	size_t size = 4096;

	for (;;) {
		struct passwd *res = NULL;
		char *buf = xmalloc(size);
		int err = getpwnam_r(name, pw, buf, size, &res);

		if (err == ERANGE && size < 1024 * 1024) {
			free(buf);
			size *= 4;
			continue;
		}
		if (err != 0 || res == NULL) {
			free(buf);
			*buf_r = NULL;
			if (err == 0 || err == ENOENT || err == ESRCH)
				return 0;
			errno = err;
			return -1;
		}
		*buf_r = buf;
		return 1;
	}
}

/* The rights a delivery to pw's mailbox uses: never root's. */
static struct local_ids user_ids(const struct state *st, const struct passwd *pw)
{
	if (pw->pw_uid == 0)
		return st->la->nobody;
	return (struct local_ids){pw->pw_uid, pw->pw_gid, pw->pw_name};
}

static void fill_vars(const struct state *st, const struct parts *p, const struct passwd *pw,
                      struct local_expand_vars *v)
{
	memset(v, 0, sizeof(*v));
	v->user = p->user;
	v->local = p->local;
	v->extension = p->extension;
	v->domain = p->domain;
	v->recipient = st->rcpt;
	v->recipient_delimiter = p->delim[0] != '\0' ? p->delim : NULL;
	if (pw != NULL) {
		v->home = pw->pw_dir;
		v->shell = pw->pw_shell;
	}
	v->mailbox = st->la->home_mailbox[0] != '\0' ? st->la->home_mailbox : p->user;
}

static void deliver_recipient(struct state st, const char *addr);
static void deliver_list(struct state st, const struct alias_list *list);

/* ---- is a destination ours? ---- */

/* 1 when addr is delivered by this agent (a $mydestination address the
 * resolver sends to our transport, or rejects as unknown: then our
 * "unknown user" answers), 0 when it goes elsewhere, -1 when a table
 * failed (why set). */
static int is_local(struct local_agent *la, const char *addr, str_t *why)
{
	struct resolve_result r;
	int rc = 0;

	resolve_result_init(&r);
	if (resolve_recipient(la->resolve, addr, &r) == RESOLVE_TEMPFAIL) {
		str_set(why, str_c(&r.error));
		rc = -1;
	} else if (r.nfinals == 1 && r.finals[0].class == RESOLVE_CLASS_LOCAL &&
	           strcasecmp(r.finals[0].address, addr) == 0 &&
	           (!r.finals[0].deliverable || strcmp(r.finals[0].transport, la->service) == 0)) {
		rc = 1;
	}
	resolve_result_free(&r);
	return rc;
}

/* ---- destinations ---- */

static void forward(struct state *st, const char *addr)
{
	local_forward_add(st->out, st->sender, st->delivered, addr, addr);
}

static void deliver_address(struct state st, const char *target, bool no_alias)
{
	char *addr = strchr(target, '@') != NULL ? xstrdup(target)
	                                         : xasprintf("%s@%s", target, st.la->myorigin);
	str_t why;
	int local;

	str_init(&why);
	if (st.unmatched != NULL) {
		/* Propagate the unmatched extension: user@d -> user+ext@d. */
		char *at = strrchr(addr, '@'), *p;
		struct parts tp;

		split_parts(st.la, addr, &tp);
		if (tp.extension == NULL) {
			p = xasprintf("%.*s%s%s%s", (int)(at - addr), addr, tp.delim, st.unmatched,
			              at);
			free(addr);
			addr = p;
		}
		parts_free(&tp);
	}
	local = is_local(st.la, addr, &why);
	if (local < 0) {
		st.rcpt = addr;
		PART(&st, LOCAL_DEFERRED, "4.3.0", DELIVERY_LOOKUP_PROBLEM ": %s", str_c(&why));
	} else if (local == 0) {
		forward(&st, addr);
	} else {
		st.unmatched = NULL;
		if (no_alias) {
			/* \user: straight to the mailbox (recipient.c). */
			st.exp_from = NULL;
			st.owner = NULL;
			st.exp_type = LOCAL_CLASS_NONE;
			st.rcpt = addr;
			/* Marked so that deliver_switch skips aliases and .forward. */
			st.exp_from = "\\";
		}
		deliver_recipient(st, addr);
	}
	str_free(&why);
	free(addr);
}

static void deliver_command(struct state *st, const char *command)
{
	struct local_command_env env;
	struct parts p;
	char dsn[8] = "4.3.0";
	enum local_status s;
	str_t why;

	if ((st->la->commands_ok & st->exp_type) == 0) {
		PART(st, LOCAL_BOUNCED, "5.7.1", "mail to command is restricted");
		return;
	}
	if (seen(st, "command", command))
		return;
	split_parts(st->la, st->rcpt, &p);
	env = (struct local_command_env){
	        .home = st->home,
	        .user = p.user,
	        .extension = p.extension,
	        .domain = p.domain,
	        .local = p.local,
	        .recipient = st->rcpt,
	        .sender = st->msg->sender,
	        .orig = st->orig,
	};
	str_init(&why);
	s = local_command_run(st->la, st->msg, command, &st->ids,
	                      st->la->exec_dir[0] != '\0' ? st->la->exec_dir : st->home, &env,
	                      st->delivered, dsn, &why);
	if (s == LOCAL_SENT)
		PART(st, s, "2.0.0", "delivered to command: %s", command);
	else
		PART(st, s, dsn, "%s", str_c(&why));
	str_free(&why);
	parts_free(&p);
}

/* The maildir key of one delivery (maildir.h once_key): queue ID and a
 * hash of the queue recipient and the mailbox, so that a retry of the
 * same delivery finds its file instead of writing a second one. */
static void once_key(const struct state *st, const char *where, str_t *out)
{
	uint64_t h = 14695981039346656037u;

	for (const char *s = st->orig;; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211u;
		if (*s == '\0')
			break;
	}
	for (const char *s = where; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211u;
	}
	str_appendf(out, "Q%sL%016" PRIx64, st->msg->queue_id, h);
}

/* Maildir below base (the home, or "/" for a /path/ destination) as ids.
 * 0 sent; else the part is logged by the caller from res. */
static enum local_status deliver_maildir(struct state *st, const struct local_ids *ids,
                                         const char *base, const char *maildir,
                                         struct maildir_result *res)
{
	struct maildir_fd_source fsrc = {.fd = st->msg->fd,
	                                 .offset = st->msg->content_offset,
	                                 .length = st->msg->content_length};
	struct maildir_request req = {
	        .base_dir = base,
	        .maildir = maildir,
	        .uid = ids->uid,
	        .gid = ids->gid,
	        .minimum_uid = 0,
	        .delivered_to = st->delivered,
	        .return_path = st->msg->sender,
	        .read = maildir_read_fd,
	        .read_context = &fsrc,
	        .once_time = (time_t)(st->msg->arrival_us / 1000000),
	        .once_search = st->msg->req->redelivery,
	};
	str_t key;
	int rc;

	str_init(&key);
	once_key(st, maildir, &key);
	req.once_key = str_c(&key);
	if (local_become(st->la, ids) < 0) {
		snprintf(res->status, sizeof(res->status), "4.3.0");
		str_set(&res->text, "");
		str_appendf(&res->text, "cannot switch to uid %ld: %s", (long)ids->uid,
		            strerror(errno));
		str_free(&key);
		return LOCAL_DEFERRED;
	}
	rc = maildir_deliver(&req, res);
	local_unbecome(st->la);
	str_free(&key);
	return rc == 0 ? LOCAL_SENT : status_of(res->status);
}

/* An mbox file as ids (root with chown for a root-owned spool). */
static enum local_status deliver_mbox(struct state *st, const struct local_ids *ids,
                                      const char *path, bool chown_to, uid_t uid, gid_t gid,
                                      struct mbox_result *res)
{
	struct maildir_fd_source src = {.fd = st->msg->fd,
	                                .offset = st->msg->content_offset,
	                                .length = st->msg->content_length};
	struct mbox_request req = {
	        .path = path,
	        .locks = st->la->locks,
	        .chown_to = chown_to,
	        .uid = uid,
	        .gid = gid,
	        .size_limit = st->la->mailbox_size_limit,
	        .copy = {.flags = MBOX_COPY_MBOX,
	                 .sender = st->msg->sender,
	                 .orig_rcpt = st->orig,
	                 .delivered = st->delivered,
	                 .read = maildir_read_fd,
	                 .read_context = &src},
	};
	int rc;

	if (local_become(st->la, ids) < 0) {
		snprintf(res->status, sizeof(res->status), "4.3.0");
		str_set(&res->text, "cannot switch user: ");
		str_append(&res->text, strerror(errno));
		return LOCAL_DEFERRED;
	}
	rc = mbox_deliver(&req, res);
	local_unbecome(st->la);
	return rc == 0 ? LOCAL_SENT : status_of(res->status);
}

static void deliver_file(struct state *st, const char *path)
{
	if ((st->la->files_ok & st->exp_type) == 0) {
		PART(st, LOCAL_BOUNCED, "5.7.1", "mail to file is restricted");
		return;
	}
	if (seen(st, "file", path))
		return;
	if (path[strlen(path) - 1] == '/') {
		struct maildir_result res;
		enum local_status s;

		maildir_result_init(&res);
		s = deliver_maildir(st, &st->ids, "/", path + 1, &res);
		if (s == LOCAL_SENT)
			PART(st, s, "2.0.0", "delivered to maildir");
		else
			PART(st, s, res.status, "maildir delivery failed: %s", str_c(&res.text));
		maildir_result_free(&res);
	} else {
		struct mbox_result res;
		enum local_status s;

		str_init(&res.text);
		s = deliver_mbox(st, &st->ids, path, false, 0, 0, &res);
		if (s == LOCAL_SENT)
			PART(st, s, "2.0.0", "delivered to file: %s", path);
		else
			PART(st, s, res.status, "cannot append message to file %s: %s", path,
			     str_c(&res.text));
		str_free(&res.text);
	}
}

static void deliver_include(struct state st, const char *path)
{
	struct alias_list list = {0};
	struct stat sb;
	str_t text, why;
	int fd;

	if (path[0] != '/') {
		PART(&st, LOCAL_BOUNCED, "5.3.5",
		     "mail system configuration error: "
		     ":include:%s is not an absolute path",
		     path);
		return;
	}
	if (seen(&st, "include", path))
		return;
	str_init(&text);
	str_init(&why);
	if (local_become(st.la, &st.ids) < 0) {
		PART(&st, LOCAL_DEFERRED, "4.3.0", "cannot switch user: %s", strerror(errno));
		goto out;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		int err = errno;

		local_unbecome(st.la);
		PART(&st, err == ENOENT || err == EACCES ? LOCAL_BOUNCED : LOCAL_DEFERRED,
		     err == ENOENT || err == EACCES ? "5.3.0" : "4.3.0",
		     "cannot open include file %s: %s", path, strerror(err));
		goto out;
	}
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) ||
	    fs_read_fd(fd, path, LOCAL_FILE_MAX, &text, &why) < 0) {
		local_unbecome(st.la);
		close(fd);
		PART(&st, LOCAL_DEFERRED, "4.3.0", "cannot read include file %s: %s", path,
		     why.len > 0 ? str_c(&why) : "not a regular file");
		goto out;
	}
	close(fd);
	local_unbecome(st.la);
	if (alias_list_parse_file(text.buf, text.len, LOCAL_ITEMS_MAX, &list, &why) < 0) {
		PART(&st, LOCAL_DEFERRED, "4.3.5", "mail system configuration error: %s: %s", path,
		     str_c(&why));
		goto out;
	}
	/* Postfix include.c: a file an ordinary user owns is delivered with
	 * that user's rights, never those of whoever included it. */
	if (sb.st_uid != 0 && sb.st_uid != st.ids.uid) {
		struct passwd *pw = getpwuid(sb.st_uid);

		if (pw == NULL) {
			PART(&st, LOCAL_DEFERRED, "4.3.0", "cannot find owner of include file %s",
			     path);
			goto out;
		}
		st.ids = (struct local_ids){pw->pw_uid, pw->pw_gid, "include file owner"};
		st.home = "/";
	}
	st.exp_type = LOCAL_CLASS_INCLUDE;
	st.exp_from = NULL;
	if (!st.la->propagate_include)
		st.unmatched = NULL;
	deliver_list(st, &list);
out:
	alias_list_free(&list);
	str_free(&text);
	str_free(&why);
}

static void deliver_list(struct state st, const struct alias_list *list)
{
	for (size_t i = 0; i < list->n; i++) {
		const struct alias_item *it = &list->items[i];

		switch (it->type) {
		case ALIAS_ITEM_ADDRESS:
			deliver_address(st, it->value, it->no_alias);
			break;
		case ALIAS_ITEM_COMMAND:
			deliver_command(&st, it->value);
			break;
		case ALIAS_ITEM_FILE:
			deliver_file(&st, it->value);
			break;
		case ALIAS_ITEM_INCLUDE:
			deliver_include(st, it->value);
			break;
		}
	}
}

/* ---- aliases ---- */

/* Whose rights a table's |command and /file get (Postfix dict_owner):
 * the owner of its file when that is not root, else default_privs. */
static struct local_ids table_ids(struct local_agent *la, const struct table *t, char **home_r)
{
	struct stat sb;
	char *db = xasprintf("%s.db", t->name);
	bool found = t->name[0] == '/' && (stat(t->name, &sb) == 0 || stat(db, &sb) == 0);

	free(db);
	*home_r = NULL;
	if (found && sb.st_uid != 0) {
		struct passwd *pw = getpwuid(sb.st_uid);

		if (pw != NULL) {
			*home_r = xstrdup(pw->pw_dir);
			return (struct local_ids){pw->pw_uid, pw->pw_gid, "alias table owner"};
		}
	}
	return la->nobody;
}

/* 1 when name is an alias (its expansion done), 0 when not. */
static int deliver_alias(struct state st, const char *name)
{
	struct local_agent *la = st.la;
	struct table_result tr;
	struct maps_answer a;
	struct alias_list list = {0};
	char *owner_key = NULL, *sender = NULL, *home = NULL;
	str_t why;
	int rc = 1;

	/* An alias that names itself delivers to the user (sendmail). */
	if (st.exp_from != NULL && strcasecmp(st.exp_from, name) == 0)
		return 0;
	if (st.level > LOCAL_LEVEL_MAX) {
		PART(&st, LOCAL_BOUNCED, "5.4.6", "alias database loop for %s", name);
		return 1;
	}
	table_result_init(&tr);
	maps_answer_init(&a);
	str_init(&why);
	if (local_alias_maps(la) < 0) {
		PART(&st, LOCAL_DEFERRED, "4.3.0", "alias database unavailable: %s",
		     str_c(&la->alias_error));
		goto out;
	}
	switch (maps_lookup(la->alias_maps, name, TABLE_F_FIXED_KEYS, &tr, &a)) {
	case TABLE_TEMPFAIL:
		PART(&st, LOCAL_DEFERRED, "4.3.0", "alias database unavailable: %s",
		     str_c(&tr.error));
		goto out;
	case TABLE_NOTFOUND:
		rc = 0;
		goto out;
	case TABLE_FOUND:
		break;
	}
	if (alias_list_parse(tr.value.buf, tr.value.len, LOCAL_ITEMS_MAX, &list, &why) < 0 ||
	    list.n == 0) {
		log_warning("alias_maps %s: %s: %s", a.table->spec, name,
		            list.n == 0 && why.len == 0 ? "no recipient in the alias"
		                                        : str_c(&why));
		PART(&st, LOCAL_DEFERRED, "4.3.0", "alias database unavailable");
		goto out;
	}
	st.exp_type = LOCAL_CLASS_ALIAS;
	st.ids = table_ids(la, a.table, &home);
	st.home = home != NULL ? home : "/";
	/* owner-NAME: where problems with this list go (Postfix sets the
	 * sender of what the list forwards). */
	owner_key = xasprintf("owner-%s", name);
	table_result_reset(&tr);
	switch (maps_lookup(la->alias_maps, owner_key, TABLE_F_FIXED_KEYS, &tr, NULL)) {
	case TABLE_TEMPFAIL:
		PART(&st, LOCAL_DEFERRED, "4.3.0", "alias database unavailable: %s",
		     str_c(&tr.error));
		goto out;
	case TABLE_FOUND:
		sender = xasprintf("%s@%s", owner_key, la->myorigin);
		st.sender = sender;
		st.owner = name;
		break;
	case TABLE_NOTFOUND:
		st.owner = NULL;
		break;
	}
	st.exp_from = name;
	st.level++;
	deliver_list(st, &list);
out:
	alias_list_free(&list);
	table_result_free(&tr);
	maps_answer_free(&a);
	str_free(&why);
	free(owner_key);
	free(sender);
	free(home);
	return rc;
}

/* ---- .forward ---- */

/* Split forward_path at commas and white space outside ${...} and
 * $(...) (strv_split_list would take the braces for a group). */
static void split_paths(const char *value, strv_t *out)
{
	const char *start = NULL;
	int depth = 0;

	for (const char *p = value;; p++) {
		bool sep = *p == '\0' ||
		           (depth == 0 && (*p == ',' || *p == ' ' || *p == '\t' || *p == '\n'));

		if (sep) {
			if (start != NULL)
				strv_add_n(out, start, (size_t)(p - start));
			start = NULL;
			if (*p == '\0')
				break;
			continue;
		}
		if (start == NULL)
			start = p;
		if (*p == '{' || *p == '(')
			depth++;
		else if ((*p == '}' || *p == ')') && depth > 0)
			depth--;
	}
}

/* 1 when a .forward file of the user took the mail, 0 when there is none
 * (or it lists nobody). */
static int deliver_dotforward(struct state st, const struct parts *p, const struct passwd *pw)
{
	struct local_agent *la = st.la;
	struct local_expand_vars vars;
	struct local_ids ids = user_ids(&st, pw);
	strv_t paths = STRV_INIT;
	int rc = 0;

	/* Not twice for one user: its own name in its .forward is its
	 * mailbox. */
	if (st.exp_type == LOCAL_CLASS_FORWARD && st.owner != NULL &&
	    strcmp(st.owner, p->user) == 0)
		return 0;
	split_paths(la->forward_path, &paths);
	fill_vars(&st, p, pw, &vars);
	for (size_t i = 0; i < paths.n && rc == 0; i++) {
		struct alias_list list = {0};
		struct stat sb;
		str_t path, text, why;
		int flags, fd;

		str_init(&path);
		str_init(&text);
		str_init(&why);
		flags = local_expand(paths.v[i], &vars, la->filter, &path, &why);
		if (flags < 0) {
			log_warning("forward_path: %s", str_c(&why));
			goto next;
		}
		if ((flags & LOCAL_EXPAND_UNDEF) || path.len == 0)
			goto next;
		if (local_become(la, &ids) < 0) {
			PART(&st, LOCAL_DEFERRED, "4.3.0", "cannot switch user: %s",
			     strerror(errno));
			rc = 1;
			goto next;
		}
		fd = open(str_c(&path), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
		if (fd < 0) {
			int err = errno;

			local_unbecome(la);
			if (err != ENOENT && err != ENOTDIR) {
				PART(&st, LOCAL_DEFERRED, "4.3.0", "cannot open %s: %s",
				     str_c(&path), strerror(err));
				rc = 1;
			}
			goto next;
		}
		if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) ||
		    (sb.st_uid != 0 && sb.st_uid != pw->pw_uid)) {
			/* Postfix: warn and look no further in this file. */
			local_unbecome(la);
			close(fd);
			log_warning("file %s is not a regular file owned by %s or root: ignored",
			            str_c(&path), pw->pw_name);
			goto next;
		}
		if (fs_read_fd(fd, str_c(&path), LOCAL_FILE_MAX, &text, &why) < 0) {
			local_unbecome(la);
			close(fd);
			PART(&st, LOCAL_DEFERRED, "4.3.0", "cannot read %s: %s", str_c(&path),
			     str_c(&why));
			rc = 1;
			goto next;
		}
		close(fd);
		local_unbecome(la);
		if (alias_list_parse_file(text.buf, text.len, LOCAL_ITEMS_MAX, &list, &why) < 0) {
			PART(&st, LOCAL_DEFERRED, "4.3.0", "error in %s: %s", str_c(&path),
			     str_c(&why));
			rc = 1;
			goto next;
		}
		if (list.n > 0) {
			struct state fst = st;

			fst.exp_type = LOCAL_CLASS_FORWARD;
			fst.owner = p->user;
			fst.exp_from = NULL;
			fst.ids = ids;
			fst.home = pw->pw_dir;
			fst.unmatched = la->propagate_forward ? p->extension : NULL;
			fst.level++;
			deliver_list(fst, &list);
			rc = 1;
		}
	next:
		alias_list_free(&list);
		str_free(&path);
		str_free(&text);
		str_free(&why);
	}
	strv_free(&paths);
	return rc;
}

/* ---- mailbox ---- */

static void pass(struct state *st, const char *transport)
{
	char dsn[8] = "4.3.0";
	enum local_status s;
	str_t why;

	str_init(&why);
	s = local_pass(st->la, st->msg, transport, st->rcpt, st->orig, dsn, &why);
	/* The other agent logged its answer; a failure to reach it is ours. */
	if (why.len > 0 && strncmp(str_c(&why), "mail transport unavailable", 26) == 0)
		PART(st, s, dsn, "%s", str_c(&why));
	else
		record(st->out, s, dsn, str_c(&why));
	str_free(&why);
}

/* 1 when the mailbox took it, 0 when the user has no account. */
static int deliver_mailbox(struct state st, const struct parts *p, const struct passwd *pw)
{
	struct local_agent *la = st.la;
	struct local_ids ids;

	if (la->mailbox_transport[0] != '\0') {
		pass(&st, la->mailbox_transport);
		return 1;
	}
	if (pw == NULL)
		return 0;
	if (seen(&st, "mailbox", p->user))
		return 1;
	ids = user_ids(&st, pw);
	if (la->mailbox_command[0] != '\0') {
		struct local_expand_vars vars;
		str_t cmd, why;

		str_init(&cmd);
		str_init(&why);
		fill_vars(&st, p, pw, &vars);
		if (local_expand(la->mailbox_command, &vars, la->filter, &cmd, &why) < 0) {
			PART(&st, LOCAL_DEFERRED, "4.3.5",
			     "mail system configuration error: mailbox_command: %s", str_c(&why));
		} else {
			st.ids = ids;
			st.home = pw->pw_dir;
			st.exp_type = LOCAL_CLASS_ALIAS; /* as Postfix: always allowed */
			{
				struct local_command_env env = {
				        .home = pw->pw_dir,
				        .user = p->user,
				        .shell = pw->pw_shell,
				        .extension = p->extension,
				        .domain = p->domain,
				        .local = p->local,
				        .recipient = st.rcpt,
				        .sender = st.msg->sender,
				        .orig = st.orig,
				};
				char dsn[8] = "4.3.0";
				enum local_status s;

				str_reset(&why);
				s = local_command_run(la, st.msg, str_c(&cmd), &ids,
				                      la->exec_dir[0] != '\0' ? la->exec_dir
				                                              : pw->pw_dir,
				                      &env, st.delivered, dsn, &why);
				if (s == LOCAL_SENT)
					PART(&st, s, "2.0.0", "delivered to command: %s",
					     str_c(&cmd));
				else
					PART(&st, s, dsn, "%s", str_c(&why));
			}
		}
		str_free(&cmd);
		str_free(&why);
		return 1;
	}
	if (la->home_mailbox[0] != '\0' && la->home_mailbox[strlen(la->home_mailbox) - 1] == '/') {
		struct maildir_result res;
		enum local_status s;

		maildir_result_init(&res);
		s = deliver_maildir(&st, &ids, pw->pw_dir, la->home_mailbox, &res);
		if (s == LOCAL_SENT)
			PART(&st, s, "2.0.0", "delivered to maildir");
		else
			PART(&st, s, res.status, "maildir delivery failed: %s", str_c(&res.text));
		maildir_result_free(&res);
		return 1;
	}
	{
		struct mbox_result res;
		enum local_status s;
		char *path;

		str_init(&res.text);
		if (la->home_mailbox[0] != '\0') {
			path = xasprintf("%s/%s", pw->pw_dir, la->home_mailbox);
			s = deliver_mbox(&st, &ids, path, false, 0, 0, &res);
		} else {
			struct stat sb;
			struct local_ids root = {0, 0, "root"};
			/* Postfix mailbox.c: a spool directory others may write
			 * to (1777) is written as the user; a root-owned one as
			 * root, the new file given to the user. */
			bool as_user = stat(la->spool_dir, &sb) == 0 && (sb.st_mode & S_IWOTH);

			path = xasprintf("%s/%s", la->spool_dir, p->user);
			s = deliver_mbox(&st, as_user || !la->root ? &ids : &root, path,
			                 !as_user && la->root, ids.uid, ids.gid, &res);
		}
		if (s == LOCAL_SENT)
			PART(&st, s, "2.0.0", "delivered to mailbox");
		else
			PART(&st, s, res.status, "cannot update mailbox %s for user %s. %s", path,
			     p->user, str_c(&res.text));
		free(path);
		str_free(&res.text);
	}
	return 1;
}

static void deliver_unknown(struct state st, const struct parts *p)
{
	struct local_agent *la = st.la;

	if (la->fallback_transport[0] != '\0') {
		pass(&st, la->fallback_transport);
		return;
	}
	if (la->luser_relay[0] != '\0') {
		struct local_expand_vars vars;
		str_t to, why;

		str_init(&to);
		str_init(&why);
		fill_vars(&st, p, NULL, &vars);
		if (local_expand(la->luser_relay, &vars, la->filter, &to, &why) < 0 || to.len == 0)
			PART(&st, LOCAL_DEFERRED, "4.3.5",
			     "mail system configuration error: luser_relay: %s", str_c(&why));
		else
			deliver_address(st, str_c(&to), false);
		str_free(&to);
		str_free(&why);
		return;
	}
	if (strcmp(p->user, "postmaster") == 0 || strcmp(p->user, "mailer-daemon") == 0) {
		log_warning("required alias not found: %s", p->user);
		PART(&st, LOCAL_SENT, "2.0.0", "discarded");
		return;
	}
	PART(&st, LOCAL_BOUNCED, "5.1.1", "unknown user: \"%s\"", p->user);
}

/* ---- the switch ---- */

static void deliver_switch(struct state st, const struct parts *p)
{
	struct passwd pw;
	char *buf = NULL;
	bool no_alias = st.exp_from != NULL && strcmp(st.exp_from, "\\") == 0;
	int found;

	if (no_alias) {
		st.exp_from = NULL;
	} else {
		st.unmatched = NULL;
		if (deliver_alias(st, p->local))
			return;
		if (p->extension != NULL) {
			st.unmatched = st.la->propagate_alias ? p->extension : NULL;
			if (deliver_alias(st, p->user))
				return;
			st.unmatched = p->extension;
		}
		/* Reached through an owner that is someone else, or through an
		 * include file: new mail, as Postfix (recipient.c). */
		if ((st.owner != NULL && strcasecmp(st.owner, p->user) != 0) ||
		    st.exp_type == LOCAL_CLASS_INCLUDE) {
			forward(&st, st.rcpt);
			return;
		}
	}
	found = user_lookup(p->user, &pw, &buf);
	if (found < 0) {
		log_warning("error looking up passwd info for %s: %m", p->user);
		PART(&st, LOCAL_DEFERRED, "4.0.0", "user lookup error");
		return;
	}
	if (found == 1) {
		struct local_ids ids = user_ids(&st, &pw);
		struct stat sb;
		int err = 0;

		if (local_become(st.la, &ids) < 0 || stat(pw.pw_dir, &sb) < 0)
			err = errno;
		local_unbecome(st.la);
		if (err != 0) {
			PART(&st, LOCAL_DEFERRED, "4.3.0", "cannot access home directory %s: %s",
			     pw.pw_dir, strerror(err));
			free(buf);
			return;
		}
	}
	if ((no_alias || found == 0 || !deliver_dotforward(st, p, &pw)) &&
	    !deliver_mailbox(st, p, found == 1 ? &pw : NULL))
		deliver_unknown(st, p);
	free(buf);
}

static void deliver_recipient(struct state st, const char *addr)
{
	struct parts p;
	char *key;

	st.level++;
	st.rcpt = addr;
	if (st.level > LOCAL_LEVEL_MAX) {
		log_warning("recipient nesting limit exceeded for %s", addr);
		PART(&st, LOCAL_BOUNCED, "5.4.6", "recipient nesting limit exceeded");
		return;
	}
	key = lower_dup(addr);
	{
		/* The level is part of the key (Postfix): a user's own name in
		 * its .forward is delivered, one level down. */
		char *dup = xasprintf("%d:%s", st.level, key);
		bool again = seen(&st, "recipient", dup);

		free(dup);
		if (again) {
			free(key);
			return;
		}
	}
	if (strv_find(&st.msg->delivered_to, key) >= 0) {
		PART(&st, LOCAL_BOUNCED, "5.4.6", "mail forwarding loop for %s", addr);
		free(key);
		return;
	}
	free(key);
	if (st.delivered == NULL)
		st.delivered = addr;
	split_parts(st.la, addr, &p);
	if (p.user[0] == '\0')
		PART(&st, LOCAL_BOUNCED, "5.1.3", "null username in \"%s\"", addr);
	else
		deliver_switch(st, &p);
	parts_free(&p);
}

void local_deliver(struct local_agent *la, struct local_message *msg, const char *rcpt,
                   const char *orig, struct local_outcome *out)
{
	struct state st = {
	        .la = la,
	        .msg = msg,
	        .out = out,
	        .orig = orig,
	        .sender = msg->sender,
	        .ids = la->nobody,
	        .home = "/",
	};

	deliver_recipient(st, rcpt);
	local_forward_flush(la, msg, orig, out);
	if (!out->any)
		local_part(la, msg, out, rcpt, orig, LOCAL_SENT, "2.0.0", "alias expanded");
}
