/* restrict_test.h - the fixture shared by the restriction engine's unit
 * tests (test_restrict.c, test_restrict_login.c): a main.cf written to a
 * private directory ("@DIR@" in it and in table files is that
 * directory), a real table_async pool on a real libevent loop, an engine
 * and one session, and running the loop until a check has answered
 * (bounded by LOOP_TIMEOUT_SECONDS).
 *
 * Each test file keeps its own base main.cf and table files (fx_setup)
 * and starts with fx_start_cf(f, its_base_cf, extra).
 */
#ifndef POSTERN_RESTRICT_TEST_H
#define POSTERN_RESTRICT_TEST_H

#include <event2/event.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "base/str.h"
#include "base/strv.h"
#include "conf/config.h"
#include "smtp/restrict.h"
#include "table/table_async.h"
#include "table_test.h"

#define LOOP_TIMEOUT_SECONDS 20

struct fx {
	char *dir;
	struct config *cfg;
	struct event_base *base;
	struct table_async *pool;
	struct restrict_engine *engine;
	struct restrict_session *sess;
};

/* Text with every "@DIR@" replaced by dir. */
static inline char *subst_dir(const char *text, const char *dir)
{
	str_t out;
	const char *p;

	str_init(&out);
	while ((p = strstr(text, "@DIR@")) != NULL) {
		str_append_n(&out, text, (size_t)(p - text));
		str_append(&out, dir);
		text = p + 5;
	}
	str_append(&out, text);
	return test_steal(&out);
}

static inline void fx_file(struct fx *f, const char *name, const char *text)
{
	char *t = subst_dir(text, f->dir);

	free(test_write_text(f->dir, name, t));
	free(t);
}

/* Build config, pool and engine from base_cf followed by extra (main.cf:
 * the last setting of a name counts). */
static inline void fx_start_cf(struct fx *f, const char *base_cf, const char *extra)
{
	char *text = xasprintf("%s%s", base_cf, extra != NULL ? extra : "");
	char *cf = subst_dir(text, f->dir);
	strv_t errors = STRV_INIT;
	struct table_open_context ctx = {0};
	str_t error;

	free(text);
	if (config_parse_text(cf, strlen(cf), "main.cf", f->dir, &f->cfg, &errors) < 0)
		fail_msg("main.cf: %s", errors.v[0]);
	strv_free(&errors);
	free(cf);
	f->base = event_base_new();
	assert_non_null(f->base);
	ctx.cfg = f->cfg;
	ctx.config_dir = f->dir;
	str_init(&error);
	f->pool = table_async_new(f->base, 2, &ctx, &error);
	if (f->pool == NULL)
		fail_msg("table_async_new: %s", str_c(&error));
	if (restrict_engine_new(f->cfg, f->pool, &f->engine, &error) < 0)
		fail_msg("restrict_engine_new: %s", str_c(&error));
	str_free(&error);
	f->sess = restrict_session_new(f->engine);
}

static inline void fx_stop(struct fx *f)
{
	restrict_session_destroy(&f->sess);
	assert_null(f->sess);
	restrict_engine_destroy(&f->engine);
	assert_null(f->engine);
	table_async_destroy(&f->pool);
	if (f->base != NULL)
		event_base_free(f->base);
	f->base = NULL;
	config_destroy(&f->cfg);
}

static inline void fx_teardown(struct fx *f)
{
	fx_stop(f);
	test_rmtree(&f->dir);
}

/* ---- Running one check ---- */

struct outcome {
	int calls;
	enum restrict_verdict verdict;
	str_t reply;
	char stage[32];
};

static inline void on_done(const struct restrict_result *r, void *ctx)
{
	struct outcome *o = ctx;

	o->calls++;
	o->verdict = r->verdict;
	str_set(&o->reply, str_c(&r->reply));
	snprintf(o->stage, sizeof(o->stage), "%s", r->stage_name);
}

static inline void on_timeout(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	*(bool *)arg = true;
}

/* Run the loop until *calls is not 0; fail after LOOP_TIMEOUT_SECONDS. */
static inline void run_until(struct fx *f, const int *calls)
{
	struct timeval tv = {LOOP_TIMEOUT_SECONDS, 0};
	bool timed_out = false;
	struct event *timer = evtimer_new(f->base, on_timeout, &timed_out);

	evtimer_add(timer, &tv);
	while (*calls == 0 && !timed_out)
		event_base_loop(f->base, EVLOOP_ONCE);
	event_free(timer);
	if (timed_out)
		fail_msg("no answer after %d s", LOOP_TIMEOUT_SECONDS);
}

#endif
