/* cleanup.c - settings, envelope and the end of a message (cleanup.h).
 *
 * smtpd and pickup open one cleanup per message; this file keeps the
 * envelope (sender and DSN data go to the queue file at once, recipients
 * are held and written after the content so that a REDIRECT or sendmail
 * -t can still change them), and at cleanup_finish() commits the queue
 * file durably to incoming or hold, or removes it.
 *
 * Failure: every failure (queue write error, table failure, REJECT, size
 * limit) is recorded once in the cleanup with its SMTP reply; later calls
 * do nothing; cleanup_finish() then destroys the writer, which removes the
 * temporary file, so no partial queue file is ever left behind.
 *
 * SECURITY: the envelope comes from smtpd/pickup, already parsed; the
 * content is handled in cleanup_message.c.
 */
#include "cleanup/cleanup.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/hash.h"
#include "base/log.h"
#include "base/mem.h"
#include "cleanup/cleanup_private.h"
#include "conf/config.h"
#include "daemon/trigger.h"

void cleanup_result_init(struct cleanup_result *r)
{
	memset(r, 0, sizeof(*r));
	str_init(&r->reply);
	r->queue = QUEUE_INCOMING;
}

void cleanup_result_free(struct cleanup_result *r)
{
	str_free(&r->reply);
}

static int open_maps(struct config *cfg, const struct table_open_context *ctx, const char *name,
                     struct maps **m_r, str_t *error)
{
	const char *value, *err;
	if (config_expand(cfg, name, &value, &err) < 0) {
		str_append(error, err);
		return -1;
	}
	*m_r = maps_open(name, value, ctx, error);
	return *m_r == NULL ? -1 : 0;
}

static int get_size(struct config *cfg, const char *name, uint64_t *value_r, str_t *error)
{
	int64_t v;
	const char *err;
	if (config_get_int(cfg, name, &v, &err) < 0) {
		str_append(error, err);
		return -1;
	}
	*value_r = v < 0 ? 0 : (uint64_t)v;
	return 0;
}

static int get_bool(struct config *cfg, const char *name, bool *value_r, str_t *error)
{
	const char *err;
	if (config_get_bool(cfg, name, value_r, &err) < 0) {
		str_append(error, err);
		return -1;
	}
	return 0;
}

int cleanup_parse_overrides(const strv_t *names, unsigned *bits_r, str_t *error)
{
	static const struct {
		const char *name;
		unsigned bit;
	} known[] = {
	        {"no_unknown_recipient_checks", CLEANUP_NO_UNKNOWN_RCPT_CHECKS},
	        {"no_address_mappings", CLEANUP_NO_ADDRESS_MAPPINGS},
	        {"no_header_body_checks", CLEANUP_NO_HEADER_BODY_CHECKS},
	        {"no_milters", CLEANUP_NO_MILTERS},
	};

	*bits_r = 0;
	for (size_t i = 0; i < names->n; i++) {
		size_t k = 0;

		while (k < sizeof(known) / sizeof(known[0]) &&
		       strcmp(known[k].name, names->v[i]) != 0)
			k++;
		if (k == sizeof(known) / sizeof(known[0])) {
			str_appendf(error,
			            "receive_override_options: unknown option \"%s\" (expected "
			            "no_unknown_recipient_checks, no_address_mappings, "
			            "no_header_body_checks or no_milters)",
			            names->v[i]);
			return -1;
		}
		*bits_r |= known[k].bit;
	}
	return 0;
}

unsigned cleanup_settings_overrides(const struct cleanup_settings *set)
{
	return set->overrides;
}

int cleanup_settings_new(struct config *cfg, const char *config_dir,
                         struct cleanup_settings **set_r, str_t *error)
{
	struct cleanup_settings *set = xcalloc(1, sizeof(*set));
	struct table_open_context ctx = {.cfg = cfg, .config_dir = config_dir};
	uint64_t hops, nesting;
	const strv_t *drop;
	const char *err;

	*set_r = NULL;
	if (get_bool(cfg, "disable_mime_input_processing", &set->disable_mime, error) < 0 ||
	    get_bool(cfg, "always_add_missing_headers", &set->always_add_missing_headers, error) <
	            0 ||
	    get_bool(cfg, "append_at_myorigin", &set->append_at_myorigin, error) < 0 ||
	    get_bool(cfg, "append_dot_mydomain", &set->append_dot_mydomain, error) < 0 ||
	    get_size(cfg, "header_size_limit", &set->header_size_limit, error) < 0 ||
	    get_size(cfg, "body_checks_size_limit", &set->body_checks_size_limit, error) < 0 ||
	    get_size(cfg, "message_size_limit", &set->message_size_limit, error) < 0 ||
	    get_size(cfg, "hopcount_limit", &hops, error) < 0 ||
	    get_size(cfg, "mime_nesting_limit", &nesting, error) < 0 ||
	    config_expand_dup(cfg, "myhostname", &set->myhostname, error) < 0 ||
	    config_expand_dup(cfg, "myorigin", &set->myorigin, error) < 0 ||
	    config_expand_dup(cfg, "mydomain", &set->mydomain, error) < 0 ||
	    config_expand_dup(cfg, "undisclosed_recipients_header",
	                      &set->undisclosed_recipients_header, error) < 0)
		goto fail;
	set->hopcount_limit = (int64_t)hops;
	set->mime_nesting_limit = (int64_t)nesting;
	if (config_get_list(cfg, "message_drop_headers", &drop, &err) < 0) {
		str_append(error, err);
		goto fail;
	}
	for (size_t i = 0; i < drop->n; i++)
		strv_add(&set->drop_headers, drop->v[i]);
	if (config_get_list(cfg, "receive_override_options", &drop, &err) < 0) {
		str_append(error, err);
		goto fail;
	}
	if (cleanup_parse_overrides(drop, &set->overrides, error) < 0)
		goto fail;
	if (set->overrides & CLEANUP_NO_MILTERS)
		log_info(
		        "receive_override_options: no_milters: nothing to disable (postern runs no "
		        "milters yet)");
	if (config_expand_dup(cfg, "content_filter", &set->content_filter, error) < 0)
		goto fail;
	if (set->content_filter[0] == '\0') {
		free(set->content_filter);
		set->content_filter = NULL;
	}
	if (open_maps(cfg, &ctx, "header_checks", &set->header_checks, error) < 0 ||
	    open_maps(cfg, &ctx, "body_checks", &set->body_checks, error) < 0)
		goto fail;
	/* Why not opened with MIME off: Postfix then uses header_checks for
	 * every header, and the MIME maps are never consulted. */
	if (!set->disable_mime &&
	    (open_maps(cfg, &ctx, "mime_header_checks", &set->mime_header_checks, error) < 0 ||
	     open_maps(cfg, &ctx, "nested_header_checks", &set->nested_header_checks, error) < 0))
		goto fail;
	*set_r = set;
	return 0;
fail:
	cleanup_settings_destroy(&set);
	return -1;
}

void cleanup_settings_destroy(struct cleanup_settings **setp)
{
	struct cleanup_settings *set = *setp;
	if (set == NULL)
		return;
	maps_close(&set->header_checks);
	maps_close(&set->mime_header_checks);
	maps_close(&set->nested_header_checks);
	maps_close(&set->body_checks);
	free(set->myhostname);
	free(set->myorigin);
	free(set->mydomain);
	free(set->undisclosed_recipients_header);
	strv_free(&set->drop_headers);
	free(set->content_filter);
	free(set);
	*setp = NULL;
}

int cleanup_open(const struct cleanup_settings *set, const struct queue_dir *qd, unsigned flags,
                 struct cleanup **c_r, str_t *error)
{
	struct queue_writer *w;
	*c_r = NULL;
	if (queue_writer_open(qd, &w, error) < 0) {
		int err = errno;
		str_reset(error);
		str_append(error, queue_error_reply(err));
		return -1;
	}
	struct cleanup *c = xcalloc(1, sizeof(*c));
	c->set = set;
	c->flags = flags;
	c->w = w;
	c->qd = qd;
	memcpy(c->id, queue_writer_id(w), QUEUE_ID_SIZE);
	c->status = CLEANUP_QUEUED;
	c->checks_off = (flags & CLEANUP_F_NO_CHECKS) != 0 ||
	                (set->overrides & CLEANUP_NO_HEADER_BODY_CHECKS) != 0;
	/* A FILTER action replaces it (cleanup_filter). */
	c->filter = set->content_filter != NULL ? xstrdup(set->content_filter) : NULL;
	c->block = CLEANUP_BLOCK_PRIMARY;
	str_init(&c->reply);
	str_init(&c->hdr);
	str_init(&c->block_boundary);
	str_init(&c->tmp);
	str_init(&c->tmp2);
	str_init(&c->type);
	str_init(&c->subtype);
	*c_r = c;
	return 0;
}

const char *cleanup_id(const struct cleanup *c)
{
	return c->id;
}

void cleanup_fail(struct cleanup *c, enum cleanup_status status, const char *reply)
{
	if (c->status != CLEANUP_QUEUED)
		return;
	c->status = status;
	str_set(&c->reply, reply);
	c->checks_off = true;
}

void cleanup_fail_write(struct cleanup *c, int err)
{
	if (c->status == CLEANUP_QUEUED)
		log_warning("%s: queue file write error: %s", c->id, strerror(err));
	cleanup_fail(c, CLEANUP_TEMPFAIL, queue_error_reply(err));
}

bool cleanup_active(const struct cleanup *c)
{
	return c->status == CLEANUP_QUEUED && !c->discard;
}

void cleanup_write(struct cleanup *c, const char *data, size_t len)
{
	if (!cleanup_active(c))
		return;
	str_t error;
	str_init(&error);
	if (queue_writer_content(c->w, data, len, &error) < 0)
		cleanup_fail_write(c, errno);
	else if (c->set->message_size_limit > 0 &&
	         queue_writer_content_size(c->w) > c->set->message_size_limit)
		cleanup_fail(c, CLEANUP_REJECTED, "552 5.3.4 Message size exceeds fixed limit");
	str_free(&error);
}

static void writer_call_failed(struct cleanup *c, int rc)
{
	if (rc < 0)
		cleanup_fail_write(c, errno);
}

void cleanup_sender(struct cleanup *c, const char *sender, const char *envid,
                    enum queue_dsn_ret ret)
{
	str_t error;
	str_init(&error);
	free(c->sender);
	c->sender = xstrdup(sender);
	if (c->status == CLEANUP_QUEUED) {
		writer_call_failed(c, queue_writer_sender(c->w, sender, &error));
		if (c->status == CLEANUP_QUEUED && (envid != NULL || ret != QUEUE_RET_NONE))
			writer_call_failed(c, queue_writer_dsn(c->w, envid, ret, &error));
	}
	str_free(&error);
}

void cleanup_rcpt_add(struct cleanup *c, const char *address, const char *orcpt, unsigned notify)
{
	if (c->nrcpt == c->rcpt_cap) {
		c->rcpt_cap = c->rcpt_cap == 0 ? 8 : c->rcpt_cap * 2;
		c->rcpts = xreallocarray(c->rcpts, c->rcpt_cap, sizeof(*c->rcpts));
	}
	struct cleanup_rcpt *r = &c->rcpts[c->nrcpt++];
	r->address = xstrdup(address);
	r->orcpt = orcpt != NULL && *orcpt != '\0' ? xstrdup(orcpt) : NULL;
	r->notify = notify;
}

void cleanup_rcpt(struct cleanup *c, const char *address, const char *orcpt, unsigned notify)
{
	cleanup_rcpt_add(c, address, orcpt, notify);
}

static void set_copy(char **field, const char *value)
{
	free(*field);
	*field = value != NULL ? xstrdup(value) : NULL;
}

void cleanup_attr(struct cleanup *c, const char *name, const char *value)
{
	if (strcmp(name, QUEUE_ATTR_CLIENT_NAME) == 0)
		set_copy(&c->client_name, value);
	else if (strcmp(name, QUEUE_ATTR_CLIENT_ADDRESS) == 0)
		set_copy(&c->client_address, value);
	else if (strcmp(name, QUEUE_ATTR_HELO_NAME) == 0)
		set_copy(&c->helo_name, value);
	else if (strcmp(name, QUEUE_ATTR_PROTOCOL) == 0)
		set_copy(&c->protocol, value);
	else if (strcmp(name, "full_name") == 0)
		set_copy(&c->full_name, value);
	if (c->status == CLEANUP_QUEUED) {
		str_t error;
		str_init(&error);
		writer_call_failed(c, queue_writer_attr(c->w, name, value, &error));
		str_free(&error);
	}
}

void cleanup_hold(struct cleanup *c, const char *reason)
{
	(void)reason; /* smtpd logs the access-table action itself */
	c->hold = true;
}

void cleanup_discard(struct cleanup *c, const char *reason)
{
	(void)reason;
	c->discard = true;
	c->checks_off = true;
}

void cleanup_filter(struct cleanup *c, const char *transport_nexthop)
{
	set_copy(&c->filter, transport_nexthop);
}

void cleanup_redirect(struct cleanup *c, const char *address)
{
	set_copy(&c->redirect, address);
}

void cleanup_prepend_header(struct cleanup *c, const char *line)
{
	if (c->started) {
		/* Content has begun: too late to go first; add it where we are
		 * if still in the primary headers, as Postfix's PREPEND does. */
		if (c->block == CLEANUP_BLOCK_PRIMARY) {
			cleanup_write(c, line, strlen(line));
			cleanup_write(c, "\n", 1);
		}
		return;
	}
	strv_add(&c->prepend, line);
	if (strncasecmp(line, "Received:", 9) == 0)
		c->hops++;
}

/* Why duplicates are removed here: Postfix's cleanup does the same
 * (duplicate_filter_limit), so a recipient named twice, or on the command
 * line and in To: with sendmail -t, gets one copy. The first occurrence
 * keeps its DSN data. A hash keeps this linear in the recipient count. */
static void add_unique(hash_t *seen, struct cleanup_rcpt *list, size_t *n,
                       const struct cleanup_rcpt *r)
{
	if (hash_contains(seen, r->address))
		return;
	hash_put(seen, r->address, NULL);
	list[(*n)++] = *r;
}

static void free_rcpts(struct cleanup *c)
{
	for (size_t i = 0; i < c->nrcpt; i++) {
		free(c->rcpts[i].address);
		free(c->rcpts[i].orcpt);
	}
	free(c->rcpts);
	c->rcpts = NULL;
	c->nrcpt = c->rcpt_cap = 0;
}

static void cleanup_free(struct cleanup *c)
{
	queue_writer_destroy(&c->w);
	free_rcpts(c);
	free(c->sender);
	free(c->client_name);
	free(c->client_address);
	free(c->helo_name);
	free(c->protocol);
	free(c->full_name);
	free(c->filter);
	free(c->redirect);
	strv_free(&c->extracted);
	strv_free(&c->extracted_resent);
	strv_free(&c->prepend);
	strv_free(&c->boundaries);
	str_free(&c->reply);
	str_free(&c->hdr);
	str_free(&c->block_boundary);
	str_free(&c->tmp);
	str_free(&c->tmp2);
	str_free(&c->type);
	str_free(&c->subtype);
	free(c);
}

/* Write the final recipient list: REDIRECT replaces everything; else the
 * envelope recipients, then (sendmail -t) those from the headers, Resent-
 * ones instead of the plain ones when the message has any. */
static size_t write_recipients(struct cleanup *c, str_t *error)
{
	size_t n = 0, cap = c->nrcpt + c->extracted.n + c->extracted_resent.n + 1;
	struct cleanup_rcpt *list = xcalloc(cap, sizeof(*list));
	hash_t *seen = hash_new(NULL);
	if (c->redirect != NULL) {
		list[n++] = (struct cleanup_rcpt){.address = c->redirect};
	} else {
		for (size_t i = 0; i < c->nrcpt; i++)
			add_unique(seen, list, &n, &c->rcpts[i]);
		const strv_t *ext =
		        c->extracted_resent.n > 0 ? &c->extracted_resent : &c->extracted;
		for (size_t i = 0; i < ext->n; i++)
			add_unique(seen, list, &n, &(struct cleanup_rcpt){.address = ext->v[i]});
	}
	for (size_t i = 0; i < n && c->status == CLEANUP_QUEUED; i++)
		writer_call_failed(c, queue_writer_rcpt(c->w, list[i].address, list[i].orcpt,
		                                        list[i].notify, error));
	hash_destroy(&seen);
	free(list);
	return n;
}

void cleanup_finish(struct cleanup **cp, struct cleanup_result *result)
{
	struct cleanup *c = *cp;
	str_t error;
	*cp = NULL;
	str_init(&error);
	str_reset(&result->reply);
	result->size = 0;
	result->nrcpt = 0;

	if (!c->started && c->status == CLEANUP_QUEUED && !c->discard)
		cleanup_message_line(c, NULL, 0, false); /* writes prepends only */
	cleanup_message_end(c); /* may HOLD: a header check on the last header */
	result->queue = c->hold ? QUEUE_HOLD : QUEUE_INCOMING;
	if (c->status == CLEANUP_QUEUED && c->discard) {
		result->status = CLEANUP_DISCARDED;
		str_appendf(&result->reply, "250 2.0.0 Ok: queued as %s", c->id);
		goto done;
	}
	size_t nrcpt = 0;
	if (c->status == CLEANUP_QUEUED) {
		nrcpt = write_recipients(c, &error);
		if (nrcpt == 0)
			cleanup_fail(c, CLEANUP_REJECTED, "550 5.1.0 no recipients specified");
	}
	if (c->status == CLEANUP_QUEUED && c->filter != NULL)
		writer_call_failed(
		        c, queue_writer_attr(c->w, QUEUE_ATTR_CONTENT_FILTER, c->filter, &error));
	if (c->status == CLEANUP_QUEUED && (c->set->overrides & CLEANUP_NO_ADDRESS_MAPPINGS))
		writer_call_failed(
		        c, queue_writer_attr(c->w, QUEUE_ATTR_NO_ADDRESS_MAPPINGS, "yes", &error));
	if (c->status == CLEANUP_QUEUED) {
		uint64_t size = queue_writer_content_size(c->w);
		if (queue_writer_commit(c->w, result->queue, &error) < 0) {
			int err = errno;
			log_warning("%s: %s", c->id, str_c(&error));
			cleanup_fail_write(c, err);
		} else {
			result->status = CLEANUP_QUEUED;
			result->size = size;
			result->nrcpt = nrcpt;
			str_appendf(&result->reply, "250 2.0.0 Ok: queued as %s", c->id);
			/* Tell qmgr at once; its periodic scan covers a lost poke. */
			if (result->queue == QUEUE_INCOMING)
				(void)trigger_send(queue_dir_root(c->qd), "public/qmgr",
				                   TRIGGER_WAKEUP);
			goto done;
		}
	}
	result->status = c->status;
	str_append(&result->reply, str_c(&c->reply));
done:
	str_free(&error);
	cleanup_free(c);
}

void cleanup_abort(struct cleanup **cp)
{
	if (*cp == NULL)
		return;
	cleanup_free(*cp);
	*cp = NULL;
}
